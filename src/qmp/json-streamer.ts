// QMP's input side: QEMU 7.2's JSON lexer, message streamer and parser
// (qobject/json-lexer.c, json-streamer.c, json-parser.c) rebuilt so that any byte
// stream yields the same values, the same error descs and the same recovery as QEMU.
//
// Shape of the machine, as in QEMU:
//  - the lexer is a table-driven DFA over bytes; a lexical error (control character,
//    0xFE/0xFF, a byte no token may start with) reports "stray '<token so far>'",
//    drops the message being collected and skips to the next structural or control
//    byte (the recovery state);
//  - the streamer counts brackets and braces and ends a message when they balance,
//    enforcing the per-message token size, token count and nesting limits;
//  - the parser turns the message's tokens into one value or one error.
// QEMU queues a message's tokens and parses them when it ends.  Here each token is
// parsed as it arrives and only the first error is kept; the result is the same
// because QEMU's recursive-descent parser also stops at the first bad token, and
// memory after an error stays constant however long the message runs on.

export type JsonResult = { kind: "value"; value: unknown } | { kind: "error"; message: string };

export interface JsonStreamerOptions {
  /** Cap on one message's token bytes, and on one token (QEMU: MAX_TOKEN_SIZE, 64 MiB). */
  maxMessageBytes?: number;
  /** Cap on one message's token count (QEMU: MAX_TOKEN_COUNT, 2 Mi). */
  maxTokens?: number;
  /** Cap on open brackets plus braces (QEMU: MAX_NESTING, 1024). */
  maxDepth?: number;
}

const MAX_TOKEN_SIZE = 64 * 1024 * 1024;
const MAX_TOKEN_COUNT = 2 * 1024 * 1024;
const MAX_NESTING = 1024;

// Lexer states (json-lexer.c, enum json_lexer_state) and token types (JSONTokenType).
// A table entry is the next state, or a token type once a token is complete; with
// LOOKAHEAD set the byte is not part of the token and is lexed again from START.
const ERR = 0;
const RECOVERY = 1;
const DQ_ESC = 2;
const DQ = 3;
const SQ_ESC = 4;
const SQ = 5;
const ZERO = 6;
const EXP_DIGITS = 7;
const EXP_SIGN = 8;
const EXP_E = 9;
const MANTISSA = 10;
const MANTISSA_DIGITS = 11;
const DIGITS = 12;
const SIGN = 13;
const KEYWORD = 14;
const START = 15;
const T_LCURLY = 16;
const T_RCURLY = 17;
const T_LSQUARE = 18;
const T_RSQUARE = 19;
const T_COLON = 20;
const T_COMMA = 21;
const T_INTEGER = 22;
const T_FLOAT = 23;
const T_KEYWORD = 24;
const T_STRING = 25;
const LOOKAHEAD = 0x80;

const LEXER = buildLexerTable();

function buildLexerTable(): Uint8Array {
  const t = new Uint8Array((START + 1) * 256); // default: ERR, as in QEMU
  const set = (state: number, from: number | string, to: number | string, next: number): void => {
    const lo = typeof from === "string" ? from.charCodeAt(0) : from;
    const hi = typeof to === "string" ? to.charCodeAt(0) : to;
    for (let b = lo; b <= hi; b++) t[state * 256 + b] = next;
  };
  const one = (state: number, ch: string, next: number): void => set(state, ch, ch, next);

  // Recovery skips to a structural character, a control character other than
  // tab, or an impossible UTF-8 byte, and lexes that byte afresh.
  set(RECOVERY, 0x00, 0xff, START | LOOKAHEAD);
  set(RECOVERY, 0x20, 0xfd, RECOVERY);
  one(RECOVERY, "\t", RECOVERY);
  for (const ch of "[]{}:,") one(RECOVERY, ch, START | LOOKAHEAD);

  // Strings take any byte but controls and 0xFE/0xFF; escapes and UTF-8 are
  // checked by the parser.
  for (const [body, esc, quote] of [[DQ, DQ_ESC, '"'], [SQ, SQ_ESC, "'"]] as const) {
    set(esc, 0x20, 0xfd, body);
    set(body, 0x20, 0xfd, body);
    one(body, "\\", esc);
    one(body, quote, T_STRING);
  }

  set(ZERO, 0x00, 0xff, T_INTEGER | LOOKAHEAD);
  set(ZERO, "0", "9", ERR);
  one(ZERO, ".", MANTISSA);

  set(EXP_DIGITS, 0x00, 0xff, T_FLOAT | LOOKAHEAD);
  set(EXP_DIGITS, "0", "9", EXP_DIGITS);
  set(EXP_SIGN, "0", "9", EXP_DIGITS);
  one(EXP_E, "-", EXP_SIGN);
  one(EXP_E, "+", EXP_SIGN);
  set(EXP_E, "0", "9", EXP_DIGITS);

  set(MANTISSA_DIGITS, 0x00, 0xff, T_FLOAT | LOOKAHEAD);
  set(MANTISSA_DIGITS, "0", "9", MANTISSA_DIGITS);
  one(MANTISSA_DIGITS, "e", EXP_E);
  one(MANTISSA_DIGITS, "E", EXP_E);
  set(MANTISSA, "0", "9", MANTISSA_DIGITS);

  set(DIGITS, 0x00, 0xff, T_INTEGER | LOOKAHEAD);
  set(DIGITS, "0", "9", DIGITS);
  one(DIGITS, "e", EXP_E);
  one(DIGITS, "E", EXP_E);
  one(DIGITS, ".", MANTISSA);
  one(SIGN, "0", ZERO);
  set(SIGN, "1", "9", DIGITS);

  // The lexer takes [a-z]+ and leaves unknown keywords to the parser.
  set(KEYWORD, 0x00, 0xff, T_KEYWORD | LOOKAHEAD);
  set(KEYWORD, "a", "z", KEYWORD);

  one(START, '"', DQ);
  one(START, "'", SQ);
  one(START, "0", ZERO);
  set(START, "1", "9", DIGITS);
  one(START, "-", SIGN);
  one(START, "{", T_LCURLY);
  one(START, "}", T_RCURLY);
  one(START, "[", T_LSQUARE);
  one(START, "]", T_RSQUARE);
  one(START, ",", T_COMMA);
  one(START, ":", T_COLON);
  set(START, "a", "z", KEYWORD);
  for (const ch of " \t\r\n") one(START, ch, START);
  return t;
}

// Parser states of the innermost open container.
const P_ARR_START = 0; // after '[': a value or ']'
const P_ARR_VALUE = 1; // after an element: ',' or ']'
const P_ARR_COMMA = 2; // after ',': a value
const P_OBJ_START = 3; // after '{': a key or '}'
const P_OBJ_KEY = 4; // after a key: ':'
const P_OBJ_COLON = 5; // after ':': a value
const P_OBJ_VALUE = 6; // after a member: ',' or '}'
const P_OBJ_COMMA = 7; // after ',': a key
const P_TOP = 8; // no container open: the message's value

const PENDING_INITIAL = 256;
const PENDING_KEEP = 64 * 1024;
const STRING_CACHE_SIZE = 256;
const STRING_CACHE_MAX_LEN = 32;

const TWO_53 = 2n ** 53n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * Splits a QMP byte stream into JSON messages and parses each as QEMU 7.2 does.
 * `emit` is called synchronously from feed(), once per message or error, in input
 * order.  Objects come back as plain objects, arrays as arrays, integers as numbers
 * when within 2^53 and as bigint beyond that (int64/uint64 range); any other number
 * is the double QEMU's strtod() would give.  Top-level scalars are values too; QMP
 * callers answer them with "QMP input must be a JSON object".
 */
export class JsonStreamer {
  private readonly emit: (result: JsonResult) => void;
  private readonly maxBytes: number;
  private readonly maxTokens: number;
  private readonly maxDepth: number;

  // Lexer: state, and the bytes of a token that began in an earlier chunk, kept in
  // one buffer grown by doubling so that a token fed a byte at a time stays compact.
  private state = START;
  private pending: Buffer = Buffer.allocUnsafe(PENDING_INITIAL);
  private pendingLen = 0;
  // Whether the string being lexed has only printable ASCII and no escapes so far.
  private plainString = true;

  // Streamer: the message being collected (JSONMessageParser).
  private braceCount = 0;
  private bracketCount = 0;
  private tokenBytes = 0;
  private tokenCount = 0;

  // Parser: the innermost open container (P_TOP when none), the ones around it,
  // the finished value and the first error.
  private cur: unknown = null;
  private curState = P_TOP;
  private curKey = "";
  private outer: unknown[] = [];
  private outerStates: number[] = [];
  private outerKeys: string[] = [];
  private done = false;
  private result: unknown = undefined;
  private error: string | null = null;
  // Recently seen short ASCII strings (object keys, mostly), so that decoding them
  // allocates nothing; direct-mapped by a hash of the bytes.
  private readonly shortStrings: string[] = new Array<string>(STRING_CACHE_SIZE).fill("");

  constructor(emit: (result: JsonResult) => void, options: JsonStreamerOptions = {}) {
    this.emit = emit;
    this.maxBytes = positive(options.maxMessageBytes, MAX_TOKEN_SIZE, "maxMessageBytes");
    this.maxTokens = positive(options.maxTokens, MAX_TOKEN_COUNT, "maxTokens");
    this.maxDepth = positive(options.maxDepth, MAX_NESTING, "maxDepth");
  }

  /** Bytes held for the message being collected: a partial token plus parsed tokens. */
  get bufferedBytes(): number {
    return this.pendingLen + (this.error === null ? this.tokenBytes : 0);
  }

  feed(chunk: Buffer | Uint8Array): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const n = buf.length;
    const cap = this.maxBytes;
    let st = this.state;
    let tokStart = 0;
    for (let i = 0; i < n; i++) {
      const b = buf[i];
      let t = LEXER[(st << 8) | b];
      if (t & LOOKAHEAD) {
        if (t !== (START | LOOKAHEAD)) this.token(t & ~LOOKAHEAD, buf, tokStart, i);
        st = START;
        t = LEXER[(START << 8) | b];
      }
      if (st === START) tokStart = i;
      if (t >= T_LCURLY) {
        this.token(t, buf, tokStart, i + 1);
        st = START;
      } else if (t === ERR) {
        this.stray(buf, tokStart, i + 1);
        st = RECOVERY;
      } else {
        const prev = st;
        st = t;
        // json_lexer_feed_char: a single token may not outgrow the limit either.
        if (st < START && st !== RECOVERY && this.pendingLen + (i + 1 - tokStart) > cap) {
          this.dropPending();
          this.fail("JSON token size limit exceeded");
          st = START;
        } else if (st === DQ || st === SQ) {
          if (prev === START) this.plainString = true;
          else if (b >= 0x80) this.plainString = false;
          // Skip bytes that leave a string body unchanged, up to the limit; while
          // the string is still plain, stop at non-ASCII to note it.
          const quote = st === DQ ? 0x22 : 0x27;
          const high = this.plainString ? 0x80 : 0xfe;
          const limit = Math.min(n, tokStart + cap - this.pendingLen);
          let j = i + 1;
          for (; j < limit; j++) {
            const c = buf[j];
            if (c === quote || c === 0x5c || c < 0x20 || c >= high) break;
          }
          i = j - 1;
        } else if (st === DQ_ESC || st === SQ_ESC) {
          this.plainString = false;
        }
      }
    }
    this.state = st;
    if (st !== START && st !== RECOVERY && tokStart < n) this.keepPending(buf, tokStart, n);
  }

  /**
   * End of input (json_message_parser_flush): a token still open is finished as if a NUL
   * followed it, and a message still open is parsed from what it has, as QEMU does for a
   * command-line argument (a stream on a socket never ends this way).
   */
  flush(): void {
    const st = this.state;
    this.state = START;
    if (st !== START && st !== RECOVERY) {
      const nul = Buffer.alloc(1);
      const t = LEXER[st << 8];
      if (t & LOOKAHEAD) {
        if (t !== (START | LOOKAHEAD)) this.token(t & ~LOOKAHEAD, nul, 0, 0);
        else this.dropPending();
      } else {
        this.stray(nul, 0, 0);
      }
    }
    if (this.tokenCount === 0) return;
    const message = this.error ?? "JSON parse error, premature EOI";
    this.fail(message);
  }

  private keepPending(buf: Buffer, start: number, end: number): void {
    const need = this.pendingLen + end - start;
    if (need > this.pending.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(this.pending.length * 2, this.maxBytes + 1)));
      this.pending.copy(grown, 0, 0, this.pendingLen);
      this.pending = grown;
    }
    buf.copy(this.pending, this.pendingLen, start, end);
    this.pendingLen = need;
  }

  private dropPending(): void {
    this.pendingLen = 0;
    // Let a buffer that held a huge token go.
    if (this.pending.length > PENDING_KEEP) this.pending = Buffer.allocUnsafe(PENDING_INITIAL);
  }

  // json_message_process_token for a complete token buf[start, end) after pending.
  private token(type: number, buf: Buffer, start: number, end: number): void {
    if (type === T_LCURLY) this.braceCount++;
    else if (type === T_RCURLY) this.braceCount--;
    else if (type === T_LSQUARE) this.bracketCount++;
    else if (type === T_RSQUARE) this.bracketCount--;

    const len = this.pendingLen + end - start;
    if (this.tokenBytes + len + 1 > this.maxBytes) {
      this.dropPending();
      return this.fail("JSON token size limit exceeded");
    }
    if (this.tokenCount + 1 > this.maxTokens) {
      this.dropPending();
      return this.fail("JSON token count limit exceeded");
    }
    if (this.bracketCount + this.braceCount > this.maxDepth) {
      this.dropPending();
      return this.fail("JSON nesting depth limit exceeded");
    }
    this.tokenBytes += len;
    this.tokenCount++;

    if (this.pendingLen > 0) {
      if (this.error === null) {
        this.keepPending(buf, start, end);
        this.parse(type, this.pending, 0, len);
      }
      this.dropPending();
    } else if (this.error === null) {
      this.parse(type, buf, start, end);
    }

    // The message ends when the counts balance, or as soon as either goes negative
    // (QEMU 7.2 on the wire: "[}" ends at the "}").
    if ((this.braceCount > 0 || this.bracketCount > 0) && this.braceCount >= 0 && this.bracketCount >= 0) return;

    if (this.error !== null) return this.fail(this.error);
    const value = this.done ? this.result : undefined;
    const complete = this.done;
    this.resetMessage();
    this.emit(complete ? { kind: "value", value } : { kind: "error", message: "JSON parse error, premature EOI" });
  }

  private stray(buf: Buffer, start: number, end: number): void {
    let bytes = buf.subarray(start, end);
    if (this.pendingLen > 0) {
      this.keepPending(buf, start, end);
      bytes = this.pending.subarray(0, this.pendingLen);
    }
    // The token is printed with %s, so it stops at a NUL byte.
    const nul = bytes.indexOf(0);
    const message = `JSON parse error, stray '${decodeLossy(nul < 0 ? bytes : bytes.subarray(0, nul))}'`;
    this.dropPending();
    this.fail(message);
  }

  private resetMessage(): void {
    this.braceCount = 0;
    this.bracketCount = 0;
    this.tokenBytes = 0;
    this.tokenCount = 0;
    this.dropContainers();
    this.done = false;
    this.result = undefined;
    this.error = null;
  }

  private fail(message: string): void {
    this.resetMessage();
    this.emit({ kind: "error", message });
  }

  // parse_error(): the first error of a message wins; vsnprintf into char[1024].
  private parseError(what: string): void {
    if (this.error !== null) return;
    if (what.length > 1023) what = what.slice(0, 1023);
    this.error = `JSON parse error, ${what}`;
    this.dropContainers();
  }

  private dropContainers(): void {
    this.cur = null;
    this.curState = P_TOP;
    this.curKey = "";
    this.outer.length = 0;
    this.outerStates.length = 0;
    this.outerKeys.length = 0;
  }

  // One token of json-parser.c's grammar, in a push style.
  private parse(type: number, buf: Buffer, start: number, end: number): void {
    const ps = this.curState;
    switch (ps) {
      case P_ARR_VALUE:
        if (type === T_COMMA) this.curState = P_ARR_COMMA;
        else if (type === T_RSQUARE) this.close();
        else this.parseError("expected separator in list");
        return;
      case P_OBJ_KEY:
        if (type === T_COLON) this.curState = P_OBJ_COLON;
        else this.parseError("missing : in object pair");
        return;
      case P_OBJ_VALUE:
        if (type === T_COMMA) this.curState = P_OBJ_COMMA;
        else if (type === T_RCURLY) this.close();
        else this.parseError("expected separator in dict");
        return;
    }
    // parse_value(): a value is expected here (an object key is parsed as a value).
    switch (type) {
      case T_STRING: {
        const s = this.parseString(buf, start, end);
        if (s !== null) this.value(s);
        return;
      }
      case T_LCURLY:
        this.open({}, P_OBJ_START);
        return;
      case T_LSQUARE:
        this.open([], P_ARR_START);
        return;
      case T_RSQUARE:
        if (ps === P_ARR_START) this.close();
        else this.parseError("expecting value");
        return;
      case T_RCURLY:
        if (ps === P_OBJ_START) this.close();
        else this.parseError("expecting value");
        return;
      case T_INTEGER:
        this.value(parseInteger(buf, start, end));
        return;
      case T_FLOAT:
        this.value(Number(buf.toString("latin1", start, end)));
        return;
      case T_KEYWORD:
        this.keyword(buf, start, end);
        return;
      default:
        this.parseError("expecting value");
    }
  }

  private open(container: unknown, state: number): void {
    if (this.curState !== P_TOP) {
      this.outer.push(this.cur);
      this.outerStates.push(this.curState);
      this.outerKeys.push(this.curKey);
    }
    this.cur = container;
    this.curState = state;
  }

  private close(): void {
    const container = this.cur;
    if (this.outer.length > 0) {
      this.cur = this.outer.pop();
      this.curState = this.outerStates.pop() ?? P_TOP;
      this.curKey = this.outerKeys.pop() ?? "";
    } else {
      this.cur = null;
      this.curState = P_TOP;
    }
    this.value(container);
  }

  private value(v: unknown): void {
    switch (this.curState) {
      case P_TOP:
        this.result = v;
        this.done = true;
        return;
      case P_ARR_START:
      case P_ARR_COMMA:
        (this.cur as unknown[]).push(v);
        this.curState = P_ARR_VALUE;
        return;
      case P_OBJ_START:
      case P_OBJ_COMMA:
        if (typeof v !== "string") return this.parseError("key is not a string in object");
        this.curKey = v;
        this.curState = P_OBJ_KEY;
        return;
      default: {
        // P_OBJ_COLON: parse_pair() looks for a duplicate only after the value.
        const obj = this.cur as Record<string, unknown>;
        const key = this.curKey;
        if (Object.hasOwn(obj, key)) return this.parseError("duplicate key");
        if (key === "__proto__") {
          Object.defineProperty(obj, key, { value: v, writable: true, enumerable: true, configurable: true });
        } else {
          obj[key] = v;
        }
        this.curState = P_OBJ_VALUE;
      }
    }
  }

  private keyword(buf: Buffer, start: number, end: number): void {
    const len = end - start;
    const c0 = buf[start];
    if (len === 4 && c0 === 0x74 && buf[start + 1] === 0x72 && buf[start + 2] === 0x75 && buf[start + 3] === 0x65) {
      this.value(true);
    } else if (len === 4 && c0 === 0x6e && buf[start + 1] === 0x75 && buf[start + 2] === 0x6c && buf[start + 3] === 0x6c) {
      this.value(null);
    } else if (len === 5 && c0 === 0x66 && buf.toString("latin1", start, end) === "false") {
      this.value(false);
    } else {
      this.parseError(`invalid keyword '${buf.toString("latin1", start, end)}'`);
    }
  }

  // A string token without escapes or non-ASCII bytes, through the cache when short.
  private plainText(buf: Buffer, from: number, to: number): string {
    const len = to - from;
    if (len > STRING_CACHE_MAX_LEN) return buf.toString("latin1", from, to);
    let hash = len;
    for (let k = from; k < to; k++) hash = (hash * 31 + buf[k]) | 0;
    const slot = hash & (STRING_CACHE_SIZE - 1);
    const cached = this.shortStrings[slot];
    if (cached.length === len) {
      let k = 0;
      while (k < len && cached.charCodeAt(k) === buf[from + k]) k++;
      if (k === len) return cached;
    }
    const s = buf.toString("latin1", from, to);
    this.shortStrings[slot] = s;
    return s;
  }

  // parse_string(): quotes at start and end-1; escapes, surrogate pairs and modified
  // UTF-8 validated as QEMU does.  Returns null after reporting an error.
  private parseString(buf: Buffer, start: number, end: number): string | null {
    const last = end - 1;
    if (this.plainString) return this.plainText(buf, start + 1, last);

    let out = "";
    let runStart = start + 1;
    let i = start + 1;
    const flush = (upto: number): void => {
      if (upto > runStart) out += buf.toString("latin1", runStart, upto);
    };
    while (i < last) {
      const b = buf[i];
      if (b < 0x80 && b !== 0x5c) {
        i++;
        continue;
      }
      flush(i);
      if (b === 0x5c) {
        const beg = i;
        const e = buf[i + 1];
        i += 2;
        switch (e) {
          case 0x22: out += '"'; break;
          case 0x27: out += "'"; break;
          case 0x5c: out += "\\"; break;
          case 0x2f: out += "/"; break;
          case 0x62: out += "\b"; break;
          case 0x66: out += "\f"; break;
          case 0x6e: out += "\n"; break;
          case 0x72: out += "\r"; break;
          case 0x74: out += "\t"; break;
          case 0x75: {
            let cp = hex4(buf, i, end);
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && buf[i] === 0x5c && buf[i + 1] === 0x75) {
              const trailing = hex4(buf, i + 2, end);
              if (trailing >= 0xdc00 && trailing <= 0xdfff) {
                cp = 0x10000 + ((cp & 0x3ff) << 10) + (trailing & 0x3ff);
                i += 6;
              } else {
                cp = -1;
              }
            }
            if (!validCodepoint(cp)) {
              // "%.*s" of the escape as written, which stops at the token's end.
              const shown = buf.subarray(beg, Math.min(i, end));
              this.parseError(`${decodeLossy(shown)} is not a valid Unicode character`);
              return null;
            }
            out += String.fromCodePoint(cp);
            break;
          }
          default:
            this.parseError("invalid escape sequence in string");
            return null;
        }
      } else {
        const seq = modUtf8Sequence(buf, i, last);
        if (seq < 0) {
          this.parseError("invalid UTF-8 sequence in string");
          return null;
        }
        out += String.fromCodePoint(seq >>> 3);
        i += seq & 7;
      }
      runStart = i;
    }
    flush(last);
    return out;
  }
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new Error(`JsonStreamer: ${name} must be a positive integer, got ${v}`);
  return v;
}

// Integers as QEMU keeps them (int64, else uint64, else double), in JS as a number
// when exact, else a bigint, else the double strtod() gives.
function parseInteger(buf: Buffer, start: number, end: number): number | bigint {
  const negative = buf[start] === 0x2d;
  const first = negative ? start + 1 : start;
  if (end - first <= 15) {
    let n = 0;
    for (let i = first; i < end; i++) n = n * 10 + (buf[i] - 0x30);
    return negative && n !== 0 ? -n : n; // "-0" is the int64 0
  }
  const text = buf.toString("latin1", start, end);
  const big = BigInt(text);
  if (big >= -TWO_53 && big <= TWO_53) return Number(big);
  if (big >= INT64_MIN && big <= INT64_MAX) return big;
  if (big > 0n && big <= UINT64_MAX) return big;
  return Number(text);
}

// cvt4hex(): four hex digits, or -1.  Bytes past the token read as its NUL end.
function hex4(buf: Buffer, at: number, end: number): number {
  let cp = 0;
  for (let k = 0; k < 4; k++) {
    const c = at + k < end ? buf[at + k] : 0;
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
    else return -1;
    cp = (cp << 4) | d;
  }
  return cp;
}

// mod_utf8_encode() accepts U+0000..U+10FFFF minus surrogates and the 66
// noncharacters.
function validCodepoint(cp: number): boolean {
  if (cp < 0 || cp > 0x10ffff) return false;
  if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  return !(cp >= 0xd800 && cp <= 0xdfff);
}

// util/unicode.c mod_utf8_codepoint() on the sequence at buf[at], bytes from `limit`
// on reading as the string's NUL end.  Returns codepoint * 8 + length when valid, else
// minus the length QEMU skips: one byte for 0xFE/0xFF or a stray continuation byte,
// the lead plus the continuation bytes present when the sequence is cut short, the
// whole sequence when it is out of range, a surrogate, a noncharacter or overlong.
// Modified UTF-8 allows the overlong C0 80 for U+0000.
function modUtf8Sequence(buf: Uint8Array, at: number, limit: number): number {
  const lead = buf[at];
  if (lead < 0x80) return lead * 8 + 1;
  if (lead >= 0xfe || (lead & 0x40) === 0) return -1;
  let len = 0;
  let mask = 0x80;
  for (; lead & mask; mask >>= 1) len++;
  let cp = lead & (mask - 1);
  for (let k = 1; k < len; k++) {
    const b = at + k < limit ? buf[at + k] : 0;
    if ((b & 0xc0) !== 0x80) return -k;
    cp = cp * 64 + (b & 0x3f);
  }
  if (!validCodepoint(cp)) return -len;
  if (cp < MIN_CP[len - 2] && !(cp === 0 && len === 2)) return -len;
  return cp * 8 + len;
}

const MIN_CP = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

/**
 * Bytes as QEMU's JSON writer reads them back when it prints an error desc: each
 * invalid modified-UTF-8 sequence becomes one U+FFFD.
 */
function decodeLossy(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = "";
  let i = 0;
  let run = 0;
  const n = buf.length;
  while (i < n) {
    if (buf[i] < 0x80) {
      i++;
      continue;
    }
    if (i > run) out += buf.toString("latin1", run, i);
    const seq = modUtf8Sequence(buf, i, n);
    if (seq < 0) {
      out += "\uFFFD";
      i -= seq;
    } else {
      out += String.fromCodePoint(seq >>> 3);
      i += seq & 7;
    }
    run = i;
  }
  if (n > run) out += buf.toString("latin1", run, n);
  return out;
}

/**
 * One JSON value from a whole string, with QEMU's words for what is wrong with it
 * (qobject_from_json, used for JSON on the command line such as -blockdev '{...}').
 */
export function parseJsonValue(text: string): unknown {
  const results: JsonResult[] = [];
  const streamer = new JsonStreamer((r) => results.push(r));
  streamer.feed(Buffer.from(text, "utf8"));
  streamer.flush();
  const first = results[0];
  if (first === undefined) throw new Error("Expecting a JSON value");
  if (first.kind === "error") throw new Error(first.message);
  if (results.length > 1) throw new Error("Expecting at most one JSON value");
  return first.value;
}
