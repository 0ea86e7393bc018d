// `minivm run --trace FILE`: a real VM's trace in Chrome's trace-event JSON, with a track per
// thread: the BQL's holders, the vCPU, in-band and out-of-band QMP, the run state.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { IDLE_LOOP, writeTinyElf } from "../helpers/elf.js";
import { startVm, type VmProcess } from "../helpers/vm.js";

interface Ev {
  name: string;
  ph: string;
  ts: number;
  dur?: number;
  tid: number;
  args?: Record<string, unknown>;
}

let vm: VmProcess | null = null;
afterEach(async () => {
  await vm?.kill();
  vm = null;
});

describe("--trace", () => {
  it("writes what the threads did as Chrome trace events, one track per thread", async () => {
    // A guest that spins forever, so stop finds it running.
    vm = await startVm((dir) => ["--bios", "none", "--kernel", writeTinyElf(join(dir, "spin.elf"), IDLE_LOOP), "--trace", join(dir, "t.json")]);
    const file = join(vm.dir, "t.json");
    const c = await vm.connect();
    await c.execute("query-status");
    await c.execOob("x-query-bql");
    await c.execute("cont");
    await c.execute("stop");
    await c.execute("quit");
    c.close();
    expect(await vm.exited).toBe(0);
    const doc = JSON.parse(readFileSync(file, "utf8")) as { traceEvents: Ev[]; otherData: { missed_events: number } };
    const ev = doc.traceEvents;
    const track = new Map(ev.filter((e) => e.ph === "M").map((e) => [e.tid, String(e.args?.["name"])]));
    const on = (name: string) => ev.filter((e) => track.get(e.tid) === name);
    expect([...track.values()]).toEqual(expect.arrayContaining(["QMP in-band", "QMP out-of-band", "BQL: main-loop", "run state"]));
    // Each in-band command is a span from dispatch to reply, named by the schema's name.
    const inband = on("QMP in-band").filter((e) => e.ph === "X").map((e) => e.name);
    expect(inband).toEqual(expect.arrayContaining(["query-status", "cont", "stop", "quit"]));
    const oob = on("QMP out-of-band").filter((e) => e.ph === "X");
    expect(oob.map((e) => e.name)).toContain("x-query-bql");
    expect(oob[0].args?.["oob"]).toBe(true);
    // The main loop held the BQL to run them; cont made the VM run and stop stopped it.
    expect(on("BQL: main-loop").filter((e) => e.name === "holds the BQL" && (e.dur ?? -1) >= 0).length).toBeGreaterThanOrEqual(4);
    expect(on("run state").map((e) => e.name)).toEqual(expect.arrayContaining(["running", "paused"]));
    expect(doc.otherData.missed_events).toBe(0);
    for (const e of ev.filter((x) => x.ph !== "M")) expect(e.ts).toBeGreaterThan(0);
  });

  it("records only the trace points --trace-events selects", async () => {
    vm = await startVm((dir) => ["--bios", "none", "--trace", join(dir, "t.json"), "--trace-events", "qmp_*"]);
    const c = await vm.connect();
    await c.execute("query-status");
    await c.execute("quit");
    c.close();
    await vm.exited;
    const ev = (JSON.parse(readFileSync(join(vm.dir, "t.json"), "utf8")) as { traceEvents: Ev[] }).traceEvents;
    const names = new Set(ev.filter((e) => e.ph !== "M").map((e) => e.name));
    expect(names.has("query-status")).toBe(true);
    expect(names.has("holds the BQL")).toBe(false);
  });
});
