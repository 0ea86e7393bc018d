// The trace rings: one writer per thread, readers that never stop it, and a count of what a
// slow reader lost; trace points chosen with QEMU-style patterns.
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createSharedRegions } from "../../src/core/regions.js";
import { selectEvents, TRACE, TRACE_EVENTS } from "../../src/trace/events.js";
import { ringBytes, setEnabledEvents, TraceReader, TraceWriter } from "../../src/trace/ring.js";

function region(records: number, rings = 2): SharedArrayBuffer {
  return createSharedRegions({ ramSize: 4096, traceRings: { count: rings, bytes: ringBytes(records) } }).trace;
}

describe("trace rings", () => {
  it("hands a reader every enabled event in order, with its arguments and thread", () => {
    const trace = region(64);
    setEnabledEvents(trace, [TRACE.bql_acquired, TRACE.bql_released]);
    const w = new TraceWriter(trace, 1);
    w.emit(TRACE.bql_acquired, 2, 1500);
    w.emit(TRACE.vcpu_slice, 1, 2, 3); // not enabled: never written
    w.emit(TRACE.bql_released, 2, 250_000);
    const r = new TraceReader(trace);
    const got = r.drain();
    expect(got.map((e) => [e.thread, TRACE_EVENTS[e.event].name, e.args])).toEqual([
      [1, "bql_acquired", [2, 1500, 0, 0]],
      [1, "bql_released", [2, 250_000, 0, 0]],
    ]);
    expect(got[1].timeMs).toBeGreaterThanOrEqual(got[0].timeMs);
    expect(r.drain()).toEqual([]);
    expect(r.missed).toBe(0);
  });

  it("never blocks the writer: a reader that falls behind loses the oldest and says how many", () => {
    const trace = region(16);
    setEnabledEvents(trace, selectEvents(""));
    const w = new TraceWriter(trace, 0);
    for (let i = 0; i < 100; i++) w.emit(TRACE.migration_pass, i);
    const r = new TraceReader(trace);
    const got = r.drain();
    expect(got.map((e) => e.args[0])).toEqual(Array.from({ length: 16 }, (_, i) => 84 + i));
    expect(r.missed).toBe(84);
  });

  it("reads a producer in another thread while it writes, losing nothing it reports as read", async () => {
    const trace = region(256);
    setEnabledEvents(trace, selectEvents(""));
    const ring = join(import.meta.dirname, "../../dist/src/trace/ring.js");
    const events = join(import.meta.dirname, "../../dist/src/trace/events.js");
    const code = `
      const { workerData } = require("node:worker_threads");
      Promise.all([import(${JSON.stringify(ring)}), import(${JSON.stringify(events)})]).then(([{ TraceWriter }, { TRACE }]) => {
        const w = new TraceWriter(workerData, 1);
        for (let i = 0; i < 200000; i++) w.emit(TRACE.migration_pass, i, i * 2);
      });`;
    const worker = new Worker(code, { eval: true, workerData: trace });
    const done = new Promise<void>((resolve) => worker.on("exit", () => resolve()));
    const r = new TraceReader(trace);
    let last = -1;
    let read = 0;
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished || read + r.missed < 200000) {
      for (const e of r.drain()) {
        // In order, and never a torn record: the second argument always matches the first.
        expect(e.args[0]).toBeGreaterThan(last);
        expect(e.args[1]).toBe(e.args[0] * 2);
        last = e.args[0];
        read++;
      }
      if (finished && read + r.missed >= 200000) break;
      await new Promise((res) => setImmediate(res));
    }
    expect(read + r.missed).toBe(200000);
    expect(last).toBe(199999);
  });

  it("selects trace points with globs and removals, and refuses a pattern that names nothing", () => {
    const names = (s: Set<number>) => [...s].map((i) => TRACE_EVENTS[i].name).sort();
    expect(names(selectEvents("bql_*"))).toEqual(["bql_acquired", "bql_released"]);
    expect(names(selectEvents("qmp_request_*,-qmp_request_queued"))).toEqual(["qmp_request_answered", "qmp_request_dispatched", "qmp_request_received"]);
    expect(selectEvents("").size).toBe(TRACE_EVENTS.length);
    expect(selectEvents("-*").size).toBe(0);
    expect(() => selectEvents("nosuch*")).toThrow(/pattern 'nosuch\*' matches no trace event/);
  });
});
