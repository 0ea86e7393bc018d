import { describe, expect, it } from "vitest";
import { JsonStreamer, type JsonResult } from "../../src/qmp/json-streamer.js";
import { formatDouble, toQmpJson } from "../../src/qmp/json-writer.js";

describe("toQmpJson layout", () => {
  it("writes a reply the way QEMU's monitor does", () => {
    expect(toQmpJson({ return: {}, id: 1 })).toBe('{"return": {}, "id": 1}');
    expect(toQmpJson({ error: { class: "GenericError", desc: "x" } })).toBe(
      '{"error": {"class": "GenericError", "desc": "x"}}',
    );
  });

  it("separates array elements with a comma and a space", () => {
    expect(toQmpJson([1, 2])).toBe("[1, 2]");
    expect(toQmpJson([[], {}, [[]]])).toBe("[[], {}, [[]]]");
    expect(toQmpJson([])).toBe("[]");
  });

  it("writes true, false and null", () => {
    expect(toQmpJson([true, false, null])).toBe("[true, false, null]");
  });

  it("keeps insertion order, including a Map's integer-like keys", () => {
    expect(toQmpJson({ b: 1, a: 2 })).toBe('{"b": 1, "a": 2}');
    expect(toQmpJson(new Map<string, unknown>([["2", 1], ["1", 2]]))).toBe('{"2": 1, "1": 2}');
  });

  it("leaves out members whose value is undefined", () => {
    expect(toQmpJson({ a: undefined, b: 1, c: undefined })).toBe('{"b": 1}');
  });

  it("refuses values JSON cannot carry", () => {
    expect(() => toQmpJson(undefined)).toThrow(/undefined/);
    expect(() => toQmpJson([undefined])).toThrow(/element 0/);
    expect(() => toQmpJson(() => 1)).toThrow(/function/);
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(() => toQmpJson(cyclic)).toThrow(/cycle/);
    let deep: unknown = 0;
    for (let i = 0; i < 3000; i++) deep = [deep];
    expect(() => toQmpJson(deep)).toThrow(/nesting deeper than 2048/);
  });
});

describe("toQmpJson strings", () => {
  it("escapes quote, backslash and the C control escapes, but not slash", () => {
    expect(toQmpJson('"\\/\b\f\n\r\t')).toBe('"\\"\\\\/\\b\\f\\n\\r\\t"');
  });

  it("writes other control characters, DEL and non-ASCII as upper-case \\uXXXX", () => {
    expect(toQmpJson("\u0000\u0001\u001f\u007f")).toBe('"\\u0000\\u0001\\u001F\\u007F"');
    expect(toQmpJson("é中\u00ff")).toBe('"\\u00E9\\u4E2D\\u00FF"');
  });

  it("writes characters beyond the BMP as a surrogate pair", () => {
    expect(toQmpJson("😀")).toBe('"\\uD83D\\uDE00"');
    expect(toQmpJson("\u{10FFFD}")).toBe('"\\uDBFF\\uDFFD"');
  });

  it("writes U+FFFD for what QEMU cannot decode: lone surrogates and noncharacters", () => {
    expect(toQmpJson("a\ud800b\udc00")).toBe('"a\\uFFFDb\\uFFFD"');
    expect(toQmpJson("\ufffe\uffff\ufdd0\u{1fffe}")).toBe('"\\uFFFD\\uFFFD\\uFFFD\\uFFFD"');
  });

  it("writes object keys with the same escaping", () => {
    expect(toQmpJson({ "é\n": 1 })).toBe('{"\\u00E9\\n": 1}');
  });
});

describe("toQmpJson numbers", () => {
  it("writes integers up to 2^53 as integers", () => {
    expect(toQmpJson([0, -1, 1500, 9007199254740992, -9007199254740992])).toBe(
      "[0, -1, 1500, 9007199254740992, -9007199254740992]",
    );
  });

  it("writes bigints exactly", () => {
    expect(toQmpJson([18446744073709551615n, -9223372036854775808n, 9007199254740993n])).toBe(
      "[18446744073709551615, -9223372036854775808, 9007199254740993]",
    );
  });

  it.each([
    [0.1, "0.10000000000000001"],
    [1.5, "1.5"],
    [-2.5, "-2.5"],
    [1e300, "1.0000000000000001e+300"],
    [1e-7, "9.9999999999999995e-08"],
    [1e-5, "1.0000000000000001e-05"],
    [0.0001, "0.0001"],
    [1e17, "1e+17"],
    [1e21, "1e+21"],
    [2 ** 53 + 2, "9007199254740994"],
    [18446744073709551616, "1.8446744073709552e+19"],
    [5e-324, "4.9406564584124654e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [1 + 2 ** -17, "1.0000076293945312"], // an exact tie, rounded to even
    [-0, "-0"],
    [Infinity, "inf"],
    [-Infinity, "-inf"],
    [NaN, "nan"],
  ])("writes the double %s as %s, like printf %%.17g", (x, text) => {
    expect(formatDouble(x)).toBe(text);
    expect(toQmpJson(x)).toBe(text);
  });
});

describe("toQmpJson with the streamer", () => {
  function parseOne(text: string): unknown {
    const out: JsonResult[] = [];
    new JsonStreamer((r) => out.push(r)).feed(Buffer.from(text, "utf8"));
    expect(out).toHaveLength(1);
    expect(out[0].kind).toBe("value");
    return (out[0] as { value: unknown }).value;
  }

  it.each([
    ["1.5e3", "1500"],
    ["-0", "0"],
    ["-0.0", "-0"],
    ["18446744073709551615", "18446744073709551615"],
    ["18446744073709551616", "1.8446744073709552e+19"],
    ["1e400", "inf"],
    ['"\\u00e9😀\\/"', '"\\u00E9\\uD83D\\uDE00/"'],
    ["{'a': [1, {}]}", '{"a": [1, {}]}'],
  ])("echoes the id %s as QEMU does: %s", (input, echoed) => {
    expect(toQmpJson(parseOne(`{"id": ${input}}`))).toBe(`{"id": ${echoed}}`);
  });
});
