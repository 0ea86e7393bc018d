import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QMP_COMMANDS } from "../../src/qapi/generated/commands.js";
import { createEventEmitters } from "../../src/qapi/generated/events.js";
import { QmpError } from "../../src/qapi/error.js";
import { generateIntoTemp, removeTempDirs } from "./helpers.js";

/** The desc of the QmpError that parsing ARGS for COMMAND throws. */
function argError(parse: (args: Record<string, unknown>) => unknown, args: Record<string, unknown>): string {
  try {
    parse(args);
  } catch (err) {
    if (err instanceof Error && "errorClass" in err) {
      expect((err as QmpError).errorClass).toBe("GenericError");
      return err.message;
    }
    throw err;
  }
  throw new Error("arguments were accepted");
}

function minivm(name: string): (args: Record<string, unknown>) => unknown {
  const spec = QMP_COMMANDS.get(name);
  if (!spec) throw new Error(`no command ${name}`);
  return (args) => spec.parseArgs(args);
}

// Descs observed from qemu-system-riscv32 7.2 for the same requests.
describe("generated validators for minivm's schema", () => {
  it("reports a bad enum value in a list as parameter 'null', like QEMU 7.2", () => {
    expect(argError(minivm("qmp_capabilities"), { enable: ["foo"] })).toBe("Parameter 'null' does not accept value 'foo'");
  });

  it("names list elements by index in type errors", () => {
    expect(argError(minivm("qmp_capabilities"), { enable: [1] })).toBe(
      "Invalid parameter type for 'enable[0]', expected: string",
    );
  });

  it("rejects a non-array where a list is expected", () => {
    expect(argError(minivm("qmp_capabilities"), { enable: "oob" })).toBe(
      "Invalid parameter type for 'enable', expected: array",
    );
  });

  it("reports a type error before an unexpected member", () => {
    expect(argError(minivm("human-monitor-command"), { "command-line": 1, foo: 2 })).toBe(
      "Invalid parameter type for 'command-line', expected: string",
    );
  });

  it("reports a missing member before an unexpected one", () => {
    expect(argError(minivm("human-monitor-command"), { foo: 2 })).toBe("Parameter 'command-line' is missing");
  });

  it("reports an unexpected member once all known ones are fine", () => {
    expect(argError(minivm("qmp_capabilities"), { enable: ["oob"], x: 1 })).toBe("Parameter 'x' is unexpected");
  });

  it("names the stray argument QEMU 7.2 names when there are several", () => {
    // QEMU's choice follows its QDict and GLib hash table order, not the input order.
    expect(argError(minivm("query-status"), { b: 1, a: 2, zz: 3 })).toBe("Parameter 'b' is unexpected");
    expect(argError(minivm("query-status"), Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`key-${i}`, i])))).toBe(
      "Parameter 'key-1' is unexpected",
    );
    expect(argError(minivm("query-version"), { "\u00e9t\u00e9": 1, zebra: 2, apple: 3, "x-y": 4, m: 5, n: 6, o: 7, p: 8, q: 9 })).toBe(
      "Parameter 'o' is unexpected",
    );
    expect(argError(minivm("human-monitor-command"), { "command-line": "info status", "cpu-index": 0, d: 1, c: 2, b: 3, a: 4 })).toBe(
      "Parameter 'b' is unexpected",
    );
  });

  it("rejects non-integers and integers beyond int64 for an int", () => {
    const hmp = minivm("human-monitor-command");
    for (const bad of ["x", 1.5, 1e20, 18446744073709551615n, true]) {
      expect(argError(hmp, { "command-line": "info status", "cpu-index": bad })).toBe(
        "Invalid parameter type for 'cpu-index', expected: integer",
      );
    }
  });

  it("rejects arguments to commands that take none, query-qmp-schema included", () => {
    expect(argError(minivm("query-status"), { a: 1 })).toBe("Parameter 'a' is unexpected");
    expect(argError(minivm("query-qmp-schema"), { a: 1 })).toBe("Parameter 'a' is unexpected");
  });

  it("returns the checked arguments, without absent optional members", () => {
    expect(minivm("human-monitor-command")({ "command-line": "info status" })).toEqual({ "command-line": "info status" });
    expect(minivm("human-monitor-command")({ "command-line": "x", "cpu-index": 2 })).toEqual({
      "command-line": "x",
      "cpu-index": 2,
    });
    expect(minivm("query-status")({})).toEqual({});
    expect(minivm("qmp_capabilities")({ enable: ["oob"] })).toEqual({ enable: ["oob"] });
  });

  it("lists the commands in schema order with their flags", () => {
    expect([...QMP_COMMANDS.keys()].slice(0, 6)).toEqual([
      "query-status",
      "stop",
      "cont",
      "system_reset",
      "system_powerdown",
      "qmp_capabilities",
    ]);
    expect(QMP_COMMANDS.get("x-oob-test")).toMatchObject({ allowOob: true, features: ["unstable"] });
    expect(QMP_COMMANDS.get("qmp_capabilities")).toMatchObject({ allowPreconfig: true, allowOob: false });
    expect(QMP_COMMANDS.get("query-qmp-schema")).toMatchObject({ gen: false, successResponse: true });
    expect(QMP_COMMANDS.get("x-query-bql")?.features).toEqual(["unstable"]);
  });

  it("emits events by name, with data only for events that have some", () => {
    const seen: [string, Record<string, unknown> | undefined][] = [];
    const ev = createEventEmitters((event, data) => seen.push([event, data]));
    ev.STOP();
    ev.SHUTDOWN({ guest: false, reason: "host-qmp-quit" });
    expect(seen).toEqual([
      ["STOP", undefined],
      ["SHUTDOWN", { guest: false, reason: "host-qmp-quit" }],
    ]);
  });
});

describe("generated validators for every kind of type", () => {
  type Parse = (args: Record<string, unknown>) => unknown;
  let parse: (name: string) => Parse;

  beforeAll(async () => {
    const dir = await generateIntoTemp(path.resolve(import.meta.dirname, "schemas/valid/main.json"));
    const mod = (await import(path.join(dir, "commands.ts"))) as {
      QMP_COMMANDS: ReadonlyMap<string, { parseArgs: Parse }>;
    };
    parse = (name) => (args) => mod.QMP_COMMANDS.get(name)!.parseArgs(args);
  });

  const holder = { value: "v", scalars: ["circle", 5, true], bytes: [0, 255], counts: [1, -1] };
  const thing = { name: "n", colour: "red", ratio: 0.5 };

  it("checks ranges of small integer types with the C type's name", () => {
    expect(argError(parse("get-things"), { filter: "red", limit: 300 })).toBe("Parameter 'limit' expects uint8_t");
    expect(argError(parse("get-things"), { filter: "red", limit: -1 })).toBe("Parameter 'limit' expects uint8_t");
    expect(argError(parse("get-things"), { filter: "red", limit: "x" })).toBe("Parameter 'limit' expects uint64");
    expect(parse("get-things")({ filter: "3d", limit: 255 })).toEqual({ filter: "3d", limit: 255 });
  });

  it("leaves out enum values whose condition does not hold", () => {
    expect(argError(parse("get-things"), { filter: "blue" })).toBe("Parameter 'filter' does not accept value 'blue'");
  });

  it("keeps integers beyond 2^53 exact as bigint and rejects those beyond int64", () => {
    expect(parse("do_legacy")({ count: 2n ** 53n + 1n })).toEqual({ count: 2n ** 53n + 1n });
    expect(argError(parse("do_legacy"), { count: 2n ** 63n })).toBe("Invalid parameter type for 'count', expected: integer");
  });

  it("wraps negative values of uint64 and size like QEMU", () => {
    expect(parse("add-thing")({ ...thing, weight: -1 })).toMatchObject({ weight: 18446744073709551615n });
  });

  it("names nested members with dots and indexes in missing/unexpected/type errors", () => {
    const { value: _v, ...noValue } = holder;
    expect(argError(parse("hold"), { holder: noValue })).toBe("Parameter 'holder.value' is missing");
    expect(argError(parse("hold"), { holder: { ...holder, extra: 1 } })).toBe("Parameter 'holder.extra' is unexpected");
    expect(argError(parse("hold"), { holder: { ...holder, counts: [1, "a"] } })).toBe(
      "Invalid parameter type for 'holder.counts[1]', expected: integer",
    );
    expect(argError(parse("hold"), { holder: 1 })).toBe("Invalid parameter type for 'holder', expected: object");
    // uint64 errors use the full name, unlike the smaller integer types (QEMU 7.2:
    // "Parameter 'boundaries[0]' expects uint64" for block-latency-histogram-set).
    expect(argError(parse("hold"), { holder: { ...holder, big: [1, "x"] } })).toBe("Parameter 'holder.big[1]' expects uint64");
  });

  it("names only the innermost member in range and enum errors, and 'null' in lists", () => {
    expect(argError(parse("hold"), { holder: { ...holder, bytes: [256] } })).toBe("Parameter 'null' expects uint8_t");
    expect(argError(parse("hold"), { holder: { ...holder, scalars: ["nope"] } })).toBe(
      "Parameter 'null' does not accept value 'nope'",
    );
    expect(argError(parse("add-shape"), { kind: "circle", radius: 2 ** 31 })).toBe("Parameter 'radius' expects int32_t");
  });

  it("picks an alternate's branch by JSON type and names the alternate when none fits", () => {
    expect(parse("hand-written")({ value: null })).toEqual({ value: null });
    expect(parse("hand-written")({ value: "s" })).toEqual({ value: "s" });
    expect(parse("hand-written")({ value: thing })).toEqual({ value: thing });
    expect(argError(parse("hand-written"), { value: 5 })).toBe("Invalid parameter type for 'value', expected: Value");
    expect(argError(parse("hand-written"), { value: { ...thing, colour: 1 } })).toBe(
      "Invalid parameter type for 'value.colour', expected: string",
    );
    expect(argError(parse("hold"), { holder: { ...holder, scalars: [{}] } })).toBe(
      "Invalid parameter type for 'null', expected: Scalar",
    );
  });

  it("reads a union's base first, then the members of the branch its tag selects", () => {
    const plain = { kind: "plain", ...thing };
    expect(parse("hold")({ holder, thing: plain })).toEqual({ holder, thing: plain });
    expect(argError(parse("hold"), { holder, thing: { kind: "nope" } })).toBe("Parameter 'kind' does not accept value 'nope'");
    expect(argError(parse("hold"), { holder, thing: { kind: "legacy" } })).toBe("Parameter 'thing.Old_Name' is missing");
    expect(argError(parse("hold"), { holder, thing: { ...plain, x: 1 } })).toBe("Parameter 'thing.x' is unexpected");
    expect(argError(parse("hold"), { holder, thing: { kind: "legacy", Old_Name: 40000 } })).toBe(
      "Parameter 'Old_Name' expects int16_t",
    );
  });

  it("takes a boxed union as the whole argument object, empty branches included", () => {
    expect(parse("add-shape")({ kind: "point", label: "p" })).toEqual({ kind: "point", label: "p" });
    expect(parse("add-shape")({ kind: "circle", radius: 1 })).toEqual({ kind: "circle", radius: 1 });
    expect(argError(parse("add-shape"), { kind: "point", radius: 1 })).toBe("Parameter 'radius' is unexpected");
  });

  it("accepts any JSON number for a number member", () => {
    expect(parse("add-thing")({ ...thing, ratio: 2n ** 60n })).toMatchObject({ ratio: 2 ** 60 });
    expect(argError(parse("add-thing"), { ...thing, ratio: "1" })).toBe("Invalid parameter type for 'ratio', expected: number");
  });
});

afterAll(removeTempDirs);
