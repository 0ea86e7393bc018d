import { describe, expect, it } from "vitest";
import { importClosure, readImportGraph, type ModulePath } from "../architecture/import-graph.js";

// The monitor thread must keep answering out-of-band commands while the core thread holds
// the BQL, so it loads only the wire layer and lock-free shared state: never the machine,
// the CPU, device models, block drivers or HMP (which all belong to the core thread).
function forbidden(m: ModulePath): string | null {
  if (m.startsWith("src/cpu/")) return "the CPU";
  if (m.startsWith("devices/")) return "a device model";
  if (m.startsWith("src/block/")) return "the block layer";
  if (m === "src/core/machine.ts") return "the machine";
  if (m.startsWith("src/hmp/") || /(^|\/)hmp[^/]*\.ts$/.test(m)) return "HMP";
  return null;
}

const graph = readImportGraph(["src", "devices"]);

describe("the monitor thread's import closure", () => {
  it("reaches neither the CPU, devices, block drivers, the machine nor HMP", () => {
    const closure = importClosure(graph, "src/monitor/monitor-worker.ts");
    const bad = [...closure].filter(([m]) => forbidden(m) !== null).map(([m, chain]) => `${forbidden(m)}: ${chain.join(" > ")}`);
    expect(bad).toEqual([]);
  });

  it("does load the session, the dispatcher and the lock-free OOB handlers", () => {
    const closure = importClosure(graph, "src/monitor/monitor-worker.ts");
    expect(closure.has("src/qmp/session.ts")).toBe(true);
    expect(closure.has("src/monitor/dispatcher.ts")).toBe(true);
    expect(closure.has("src/core/oob-commands.ts")).toBe(true);
  });

  it("loads, for the OOB handlers, only lock-free shared state and the generated types and errors", () => {
    // Both threads run these handlers; the monitor thread must be able to run them while the
    // core thread holds the BQL, so they may see the control words and the BQL, nothing else.
    const lockFree = (m: ModulePath): boolean =>
      ["src/core/oob-commands.ts", "src/core/shared.ts", "src/core/regions.ts", "src/core/bql.ts", "src/qapi/error.ts", "src/migration/status-word.ts"].includes(m) ||
      // The trace rings are lock-free shared memory too.
      m.startsWith("src/trace/") ||
      m.startsWith("src/qapi/generated/");
    const closure = importClosure(graph, "src/core/oob-commands.ts");
    expect([...closure].filter(([m]) => !lockFree(m)).map(([, chain]) => chain.join(" > "))).toEqual([]);
  });

  it("would notice HMP if the core's command table were pulled in", () => {
    const closure = importClosure(graph, "src/core/handlers.ts");
    expect([...closure.keys()].filter((m) => forbidden(m) !== null)).toContain("src/hmp/hmp.ts");
  });
});
