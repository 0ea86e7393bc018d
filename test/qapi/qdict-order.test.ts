import { describe, expect, it } from "vitest";
import { toQmpJson } from "../../src/qmp/json-writer.js";
import { inQdictOrder, qdictBucket, qdictKeyOrder } from "../../src/qapi/qdict-order.js";

// The orders below were seen on the wire from QEMU 7.2 (see test/qmp/differential.test.ts).
describe("QEMU's QDict key order", () => {
  it("puts a reply's id after return and before error, as QEMU prints them", () => {
    expect(qdictKeyOrder(["return", "id"])).toEqual(["return", "id"]);
    expect(qdictKeyOrder(["error", "id"])).toEqual(["id", "error"]);
    expect(qdictKeyOrder(["class", "desc"])).toEqual(["class", "desc"]);
  });

  it("lists keys that share a bucket newest first", () => {
    // running, singlestep and status are inserted in that order; singlestep and status share a bucket.
    expect(qdictBucket("singlestep")).toBe(qdictBucket("status"));
    expect(qdictKeyOrder(["running", "singlestep", "status"])).toEqual(["status", "singlestep", "running"]);
  });

  it("orders nested objects too, leaving arrays in place", () => {
    const greeting = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "p" }, capabilities: ["oob"] } };
    expect(toQmpJson(inQdictOrder(greeting))).toBe(
      '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "p"}, "capabilities": ["oob"]}}',
    );
    expect(inQdictOrder([{ b: 1, a: 2 }, 3])).toEqual([{ b: 1, a: 2 }, 3]);
  });

  it("gives the same answer from its cache as from a fresh sort", () => {
    const keys = ["timestamp", "event", "data"];
    const first = qdictKeyOrder(keys);
    expect(qdictKeyOrder([...keys])).toBe(first);
    expect(first).toEqual(["timestamp", "event", "data"]);
  });
});
