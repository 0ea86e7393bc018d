// QMP's output side: JSON text exactly as QEMU 7.2 writes it (qobject/json-writer.c
// via qobject_to_json(), used by monitor/qmp.c): ": " and ", " separators, ASCII only
// with \uXXXX escapes in upper-case hex, integers exact, doubles with "%.17g".
// The caller appends "\r\n".

/**
 * Writes `value` as QEMU would.  Object members come in insertion order (a Map keeps
 * even integer-like keys in order); members whose value is `undefined` are left out,
 * like an absent optional QAPI member.  A JS number that is an integer no larger than
 * 2^53 in magnitude prints as an integer; any other number prints as QEMU prints a
 * double, so 64-bit integers beyond that must be passed as bigint.
 */
export function toQmpJson(value: unknown): string {
  return write(value, []);
}

// Twice what the parser accepts (1024), and well inside the JS stack.
const MAX_DEPTH = 2048;

function write(value: unknown, open: object[]): string {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "number":
      return formatNumber(value);
    case "bigint":
      return value.toString();
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      throw new Error(`toQmpJson: cannot write a ${typeof value}; expected a JSON value`);
  }
  if (value === null) return "null";
  if (open.includes(value)) throw new Error("toQmpJson: the value contains itself (a cycle)");
  if (open.length >= MAX_DEPTH) throw new Error(`toQmpJson: nesting deeper than ${MAX_DEPTH}`);
  open.push(value);
  let out: string;
  if (Array.isArray(value)) {
    out = "[";
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (v === undefined) throw new Error(`toQmpJson: array element ${i} is undefined`);
      out += (i > 0 ? ", " : "") + write(v, open);
    }
    out += "]";
  } else if (value instanceof Map) {
    out = "{";
    for (const [k, v] of value) {
      if (typeof k !== "string") throw new Error(`toQmpJson: Map key ${String(k)} is not a string`);
      if (v === undefined) continue;
      out += (out.length > 1 ? ", " : "") + quote(k) + ": " + write(v, open);
    }
    out += "}";
  } else {
    out = "{";
    const obj = value as Record<string, unknown>;
    for (const k in obj) {
      if (!Object.hasOwn(obj, k)) continue;
      const v = obj[k];
      if (v === undefined) continue;
      out += (out.length > 1 ? ", " : "") + quote(k) + ": " + write(v, open);
    }
    out += "}";
  }
  open.pop();
  return out;
}

// Characters that need more than copying: controls, '"', '\\', DEL and non-ASCII.
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\u007f-\uffff]/;

// quoted_str(): QEMU walks the string's UTF-8 and escapes every code point outside
// printable ASCII; what it cannot decode (in JS: a lone surrogate, or a noncharacter,
// which mod_utf8_codepoint() rejects) becomes U+FFFD.
function quote(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  let out = '"';
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) continue;
    if (i > run) out += s.slice(run, i);
    switch (c) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += "\\\\"; break;
      case 0x08: out += "\\b"; break;
      case 0x0c: out += "\\f"; break;
      case 0x0a: out += "\\n"; break;
      case 0x0d: out += "\\r"; break;
      case 0x09: out += "\\t"; break;
      default: {
        let cp = c;
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
          const lo = s.charCodeAt(i + 1);
          if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
            i++;
          }
        }
        if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) {
          cp = 0xfffd;
        }
        if (cp > 0xffff) {
          out += `\\u${hex4(0xd800 + ((cp - 0x10000) >> 10))}\\u${hex4(0xdc00 + ((cp - 0x10000) & 0x3ff))}`;
        } else {
          out += `\\u${hex4(cp)}`;
        }
      }
    }
    run = i + 1;
  }
  if (run < s.length) out += s.slice(run);
  return out + '"';
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, "0");
}

const TWO_53 = 2 ** 53;

function formatNumber(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) <= TWO_53 && !Object.is(x, -0)) return String(x);
  return formatDouble(x);
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HIGH_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * printf("%.17g") as glibc does it: 17 significant digits rounded from the exact
 * binary value, ties to even; fixed notation for exponents -4..16, else d.ddde±XX;
 * trailing zeros dropped; "inf", "-inf", "nan", "-nan".
 */
export function formatDouble(x: number): string {
  f64[0] = x;
  const negative = (u32[HIGH_WORD] & 0x80000000) !== 0;
  const sign = negative ? "-" : "";
  if (Number.isNaN(x)) return sign + "nan";
  if (!Number.isFinite(x)) return sign + "inf";
  if (x === 0) return sign + "0";

  // x = mantissa * 2^exp2 exactly.
  const hi = u32[HIGH_WORD] & 0x7fffffff;
  const lo = u32[1 - HIGH_WORD];
  const biased = hi >>> 20;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp2: number;
  if (biased === 0) {
    exp2 = -1074;
  } else {
    mantissa |= 1n << 52n;
    exp2 = biased - 1075;
  }
  // All decimal digits of the exact value, and where the decimal point falls.
  let digits: string;
  let pointAt: number;
  if (exp2 >= 0) {
    digits = (mantissa << BigInt(exp2)).toString();
    pointAt = digits.length;
  } else {
    digits = (mantissa * 5n ** BigInt(-exp2)).toString();
    pointAt = digits.length + exp2;
  }

  const P = 17;
  let sig = digits.slice(0, P);
  if (digits.length > P) {
    const next = digits.charCodeAt(P) - 48;
    const rest = /[1-9]/.test(digits.slice(P + 1));
    const odd = (sig.charCodeAt(P - 1) - 48) % 2 === 1;
    if (next > 5 || (next === 5 && (rest || odd))) {
      const up = (BigInt(sig) + 1n).toString();
      if (up.length > P) {
        sig = up.slice(0, P);
        pointAt++;
      } else {
        sig = up;
      }
    }
  }
  sig = sig.padEnd(P, "0");
  const X = pointAt - 1;
  if (X < -4 || X >= P) {
    const mant = stripZeros(sig[0] + "." + sig.slice(1));
    const e = Math.abs(X).toString().padStart(2, "0");
    return `${sign}${mant}e${X < 0 ? "-" : "+"}${e}`;
  }
  if (X >= 0) return sign + stripZeros(sig.slice(0, X + 1) + "." + sig.slice(X + 1));
  return sign + stripZeros("0." + "0".repeat(-X - 1) + sig);
}

function stripZeros(s: string): string {
  let end = s.length;
  while (s.charCodeAt(end - 1) === 0x30) end--;
  if (s.charCodeAt(end - 1) === 0x2e) end--;
  return s.slice(0, end);
}
