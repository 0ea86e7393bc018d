import { describe, expect, it } from "vitest";
import { JsonStreamer, type JsonResult, type JsonStreamerOptions } from "../../src/qmp/json-streamer.js";

const bytes = (s: string): Buffer => Buffer.from(s, "latin1");
const utf8 = (s: string): Buffer => Buffer.from(s, "utf8");

function run(chunks: (string | Buffer)[], options?: JsonStreamerOptions): JsonResult[] {
  const out: JsonResult[] = [];
  const s = new JsonStreamer((r) => out.push(r), options);
  for (const c of chunks) s.feed(typeof c === "string" ? bytes(c) : c);
  return out;
}

const value = (v: unknown): JsonResult => ({ kind: "value", value: v });
const error = (what: string): JsonResult => ({ kind: "error", message: `JSON parse error, ${what}` });
const limit = (message: string): JsonResult => ({ kind: "error", message });

describe("JsonStreamer framing", () => {
  it("emits a request fed in one chunk", () => {
    expect(run(['{"execute": "query-status", "id": 1}'])).toEqual([value({ execute: "query-status", id: 1 })]);
  });

  it("reads a plain Uint8Array view without copying its whole buffer", () => {
    const backing = new Uint8Array(Buffer.from('xx{"a": [1]}yy'));
    const out: JsonResult[] = [];
    new JsonStreamer((r) => out.push(r)).feed(backing.subarray(2, 12));
    expect(out).toEqual([value({ a: [1] })]);
  });

  it("emits several messages from one chunk in input order", () => {
    expect(run(['{"a":1}[2]"three" 4 true{"b":{}}'])).toEqual([
      value({ a: 1 }),
      value([2]),
      value("three"),
      value(4),
      value(true),
      value({ b: {} }),
    ]);
  });

  it("emits a top-level number only once the next byte ends it", () => {
    const out: JsonResult[] = [];
    const s = new JsonStreamer((r) => out.push(r));
    s.feed(bytes("12"));
    expect(out).toEqual([]);
    s.feed(bytes("3 "));
    expect(out).toEqual([value(123)]);
  });

  it("gives the same results whatever byte position a chunk boundary falls on", () => {
    const input = utf8(
      `{"execute":"nosuch","id":"é😀\\u00e9\\ud83d\\ude00"} [1.5e3, -0, 18446744073709551615] @junk ` +
        `{'a':'it\\'s'}\x01[tru]{"k":1,"k":2}` +
        "\n[" +
        "{".repeat(3) +
        "]}}}",
    );
    const whole = run([input]);
    expect(whole.length).toBe(8);
    for (let cut = 0; cut <= input.length; cut++) {
      expect(run([input.subarray(0, cut), input.subarray(cut)]), `split at ${cut}`).toEqual(whole);
    }
    expect(run([...input].map((b) => Buffer.from([b])))).toEqual(whole);
  });

  it("assembles a long string fed one byte at a time", () => {
    const text = "é".repeat(20_000) + "x".repeat(60_000);
    const input = utf8(`["${text}"]`);
    const out: JsonResult[] = [];
    const s = new JsonStreamer((r) => out.push(r));
    for (let i = 0; i < input.length; i++) {
      s.feed(input.subarray(i, i + 1));
      // "[" is one token byte; the string so far is the rest.
      if (i === 50_000) expect(s.bufferedBytes).toBe(50_001);
    }
    expect(out).toEqual([value([text])]);
    expect(s.bufferedBytes).toBe(0);
  });

  it("decodes a UTF-8 character split across chunks", () => {
    const emoji = utf8('"😀é"');
    for (let cut = 1; cut < emoji.length; cut++) {
      expect(run([emoji.subarray(0, cut), emoji.subarray(cut)])).toEqual([value("😀é")]);
    }
  });

  it("treats newlines as whitespace, so an unclosed brace swallows later lines", () => {
    expect(run(['{"execute":"a"\n', '{"execute":"b"}\n', "}\n", "[1]"])).toEqual([
      error("expected separator in dict"),
      value([1]),
    ]);
  });

  it("ends a message as soon as a bracket or brace count goes negative", () => {
    expect(run(["[}", "1 "])).toEqual([error("expecting value"), value(1)]);
    expect(run(["{]", "1 "])).toEqual([error("expecting value"), value(1)]);
    expect(run(["] } , :"])).toEqual([
      error("expecting value"),
      error("expecting value"),
      error("expecting value"),
      error("expecting value"),
    ]);
  });

  it("accepts single-quoted strings and the \\' escape", () => {
    expect(run([`{'execute':'it\\'s "quoted"', "b": "\\'"}`])).toEqual([
      value({ execute: `it's "quoted"`, b: "'" }),
    ]);
  });

  it("keeps a __proto__ key as an ordinary member", () => {
    const [r] = run(['{"__proto__": {"polluted": 1}}']);
    expect(r.kind).toBe("value");
    const v = (r as { value: Record<string, unknown> }).value;
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("JsonStreamer values", () => {
  it("decodes escapes, surrogate pairs and modified UTF-8's C0 80", () => {
    expect(run([bytes('"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\uD83D\\uDE00\xc0\x80"')])).toEqual([
      value('"\\/\b\f\n\r\tA😀\u0000'),
    ]);
  });

  it("keeps integers that fit a double exactly as numbers", () => {
    expect(run(["[0, -0, 42, -42, 9007199254740992, -9007199254740992]"])).toEqual([
      value([0, 0, 42, -42, 9007199254740992, -9007199254740992]),
    ]);
    expect(Object.is((run(["[-0]"])[0] as { value: number[] }).value[0], 0)).toBe(true);
  });

  it("keeps 64-bit integers beyond 2^53 exact as bigint", () => {
    expect(run(["[9007199254740993, 18446744073709551615, -9223372036854775808, 9223372036854775807]"])).toEqual([
      value([9007199254740993n, 18446744073709551615n, -9223372036854775808n, 9223372036854775807n]),
    ]);
  });

  it("turns integers outside int64 and uint64 into doubles, as strtod does", () => {
    expect(run(["[18446744073709551616, -9223372036854775809]"])).toEqual([
      value([18446744073709551616, -9223372036854775809]),
    ]);
  });

  it("parses floats with strtod's results", () => {
    const [r] = run(["[1.5e3, 0.1, -0.0, 1E+2, 1e400, -1e400, 2.5e-324]"]);
    const v = (r as { value: number[] }).value;
    expect(v.slice(0, 4)).toEqual([1500, 0.1, -0, 100]);
    expect(Object.is(v[2], -0)).toBe(true);
    expect(v[4]).toBe(Infinity);
    expect(v[5]).toBe(-Infinity);
    expect(v[6]).toBe(5e-324);
  });
});

describe("JsonStreamer parse errors", () => {
  it.each([
    ["{,}", "expecting value"],
    ['{"a":}', "expecting value"],
    ["[1,]", "expecting value"],
    ["[,]", "expecting value"],
    ['{"a" 1}', "missing : in object pair"],
    ['{"a":1 "b":2}', "expected separator in dict"],
    ['{"a":1]', "expected separator in dict"],
    ["[1 2]", "expected separator in list"],
    ["[true1]", "expected separator in list"],
    ["{1:2}", "key is not a string in object"],
    ['{["a"]:2}', "key is not a string in object"],
    ["[tru]", "invalid keyword 'tru'"],
    ["{tru:1}", "invalid keyword 'tru'"],
    ['{"a":1,"a":2}', "duplicate key"],
    ['{"a":1,"a":tru}', "invalid keyword 'tru'"],
    ['["\\x"]', "invalid escape sequence in string"],
    ['["\\ud800"]', "\\ud800 is not a valid Unicode character"],
    ['["\\uDBFF\\u0041"]', "\\uDBFF is not a valid Unicode character"],
    ['["\\udc00"]', "\\udc00 is not a valid Unicode character"],
    ['["\\u12"]', '\\u12" is not a valid Unicode character'],
    ['["\\uzzzz"]', "\\uzzzz is not a valid Unicode character"],
    ['["\\ufffe"]', "\\ufffe is not a valid Unicode character"],
    ['["\\ufdd0"]', "\\ufdd0 is not a valid Unicode character"],
    ['["\xef\xbf\xbf"]', "invalid UTF-8 sequence in string"],
    ['["\xed\xa0\x80"]', "invalid UTF-8 sequence in string"],
    ['["\xc1\xbf"]', "invalid UTF-8 sequence in string"],
    ['["\xe2\x82"]', "invalid UTF-8 sequence in string"],
    ['["\x80"]', "invalid UTF-8 sequence in string"],
    ['["\xf8\x88\x80\x80\x80"]', "invalid UTF-8 sequence in string"],
  ])("reports %j as %j", (input, what) => {
    expect(run([bytes(input)])).toEqual([error(what)]);
  });

  it("reports only the first error of a message, once the message ends", () => {
    expect(run(["[tru, 1 2, {1:2}", "]"])).toEqual([error("invalid keyword 'tru'")]);
    expect(run(["[tru, 1 2, {1:2}"])).toEqual([]);
  });

  it("cuts the message at 1023 bytes, as parse_error()'s buffer does", () => {
    const word = "a".repeat(2000);
    const [r] = run([`[${word}]`]);
    expect(r).toEqual(error(`invalid keyword '${word}`.slice(0, 1023)));
  });
});

describe("JsonStreamer lexical errors and recovery", () => {
  it.each([
    ["@", "stray '@'"],
    ["\x01", "stray '\u0001'"],
    ["\xff", "stray '\uFFFD'"],
    ["\xfe", "stray '\uFFFD'"],
    ["\x00", "stray ''"],
    ["%", "stray '%'"],
    ["T", "stray 'T'"],
    ["01", "stray '01'"],
    ["-x", "stray '-x'"],
    ["1.}", "stray '1.}'"],
    ["1e}", "stray '1e}'"],
    ['"a\nb"', "stray '\"a\n'"],
    ['"ab\x00cd"', "stray '\"ab'"],
    ['"ab\xff"', "stray '\"ab\uFFFD'"],
    ["\xc3\xa9", "stray '\uFFFD'"],
  ])("reports %j as %j", (input, what) => {
    expect(run([bytes(input)])[0]).toEqual(error(what));
  });

  it("keeps a valid UTF-8 character of the token in the stray message", () => {
    expect(run([utf8('"é\u0001')])).toEqual([error("stray '\"é\u0001'")]);
  });

  it("drops the open message and skips to the next structural character", () => {
    expect(run(['{"execute":"a", "id":1 @@@ "junk" tru } {"b":2}'])).toEqual([
      error("stray '@'"),
      error("expecting value"),
      value({ b: 2 }),
    ]);
  });

  it("stops skipping at a control character, which is itself an error, but not at a tab", () => {
    expect(run(["@ abc\t\"x\x02 [1]"])).toEqual([error("stray '@'"), error("stray '\u0002'"), value([1])]);
  });

  it("gives each 0xFF its own error even while skipping", () => {
    expect(run([bytes("@\xff\xff[]")])).toEqual([
      error("stray '@'"),
      error("stray '\uFFFD'"),
      error("stray '\uFFFD'"),
      value([]),
    ]);
  });

  it("resynchronises on a newline after junk", () => {
    expect(run(["@ junk\n", '"ok"'])).toEqual([error("stray '@'"), value("ok")]);
  });
});

describe("JsonStreamer limits", () => {
  it("rejects nesting 1025 deep and accepts 1024", () => {
    expect(run(["[".repeat(1024) + "]".repeat(1024)])).toHaveLength(1);
    expect(run(["[".repeat(1024) + "]".repeat(1024)])[0].kind).toBe("value");
    expect(run(["[".repeat(1025), "[]"])).toEqual([limit("JSON nesting depth limit exceeded"), value([])]);
    expect(run(["[{".repeat(512) + "[", "[]"])).toEqual([limit("JSON nesting depth limit exceeded"), value([])]);
  });

  it("counts braces and brackets together against maxDepth", () => {
    expect(run(['[{"a":[1]}]'], { maxDepth: 3 })).toEqual([value([{ a: [1] }])]);
    expect(run(['[{"a":[[1]]}]'], { maxDepth: 3 })[0]).toEqual(limit("JSON nesting depth limit exceeded"));
  });

  it("rejects a message over maxTokens tokens and reparses what follows", () => {
    // [ 1 , 2 ] is five tokens.
    expect(run(["[1,2]"], { maxTokens: 5 })).toEqual([value([1, 2])]);
    // The sixth token, 3, is refused and dropped; "]" is then a message of its own.
    expect(run(["[1,2,3]"], { maxTokens: 5 })).toEqual([
      limit("JSON token count limit exceeded"),
      error("expecting value"),
    ]);
  });

  it("rejects the real 2 Mi token limit", () => {
    const out = run(["[" + "0,".repeat(1024 * 1024), "[]"]);
    expect(out).toEqual([limit("JSON token count limit exceeded"), value([])]);
  });

  it("rejects a message whose token bytes plus one exceed maxMessageBytes", () => {
    // ["aaaa"] is 1 + 6 + 1 = 8 token bytes.
    expect(run(['["aaaa"]'], { maxMessageBytes: 9 })).toEqual([value(["aaaa"])]);
    expect(run(['["aaaa"]', "7 "], { maxMessageBytes: 8 })).toEqual([
      limit("JSON token size limit exceeded"),
      value(7),
    ]);
  });

  it("cuts a single token that outgrows maxMessageBytes and lexes the rest afresh", () => {
    // After 17 bytes of string the token is dropped; "xyz" then lexes as a keyword.
    expect(run(['"' + "a".repeat(16) + 'xyz" '], { maxMessageBytes: 16 })).toEqual([
      limit("JSON token size limit exceeded"),
      error("invalid keyword 'xyz'"),
    ]);
  });

  it("drops buffered tokens once a limit is hit", () => {
    const s = new JsonStreamer(() => undefined, { maxMessageBytes: 64 });
    s.feed(bytes('["' + "a".repeat(40)));
    expect(s.bufferedBytes).toBe(42);
    s.feed(bytes("a".repeat(24)));
    expect(s.bufferedBytes).toBe(0);
  });

  it("keeps memory bounded under many megabytes of junk", () => {
    const cap = 256 * 1024;
    const junk = [
      "x".repeat(64 * 1024), // one endless keyword
      '"' + "s".repeat(64 * 1024 - 1), // one endless string
      "[".repeat(64 * 1024), // nesting
      "[0,".repeat(16 * 1024), // many tokens
      '["' + "b".repeat(1000) + '",'.repeat(60), // many big tokens
      "@".repeat(64 * 1024), // skipped by recovery
      "\xff".repeat(64 * 1024),
    ];
    let errors = 0;
    let maxBuffered = 0;
    const s = new JsonStreamer((r) => void (r.kind === "error" && errors++), { maxMessageBytes: cap });
    let fed = 0;
    for (let round = 0; fed < 32 * 1024 * 1024; round++) {
      const chunk = bytes(junk[round % junk.length]);
      for (let k = 0; k < 8; k++) {
        s.feed(chunk);
        fed += chunk.length;
        maxBuffered = Math.max(maxBuffered, s.bufferedBytes);
      }
    }
    expect(maxBuffered).toBeLessThanOrEqual(cap + 1);
    expect(errors).toBeGreaterThan(0);
  });

  it("buffers nothing while skipping junk with the default limits", () => {
    const s = new JsonStreamer(() => undefined);
    const junk = bytes("@ skipped junk ".repeat(4096));
    for (let i = 0; i < 256; i++) {
      s.feed(junk);
      expect(s.bufferedBytes).toBe(0);
    }
  });

  it("rejects options that are not positive integers", () => {
    expect(() => new JsonStreamer(() => undefined, { maxMessageBytes: 0 })).toThrow(/maxMessageBytes/);
    expect(() => new JsonStreamer(() => undefined, { maxTokens: 1.5 })).toThrow(/maxTokens/);
  });
});
