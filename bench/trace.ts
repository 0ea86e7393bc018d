// What tracing costs: one trace point on and off (tinybench), and whole workloads with every
// trace point recording (the default) against `--trace-events '-*'` (none): the teaching
// guest's own `bench cpu` through the real main loop, and in-band QMP round trips, median and
// p99. The target: within 3% of tracing off. Prints JSON.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bench } from "tinybench";
import { createSharedRegions } from "../src/core/regions.js";
import { QmpClient } from "../src/qmp/client.js";
import { selectEvents, TRACE } from "../src/trace/events.js";
import { ringBytes, setEnabledEvents, TraceWriter } from "../src/trace/ring.js";

const repo = process.cwd();
const dir = mkdtempSync(join(tmpdir(), "minivm-bench-trace-"));
const PROMPT = "minivm$ ";
const ROUNDS = Number(process.env.MINIVM_BENCH_REPEAT ?? 3);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

async function emitCost(): Promise<Record<string, number>> {
  const regions = createSharedRegions({ ramSize: 4096, traceRings: { count: 1, bytes: ringBytes(16384) } });
  const on = new TraceWriter(regions.trace, 0);
  const bench = new Bench({ time: 300 });
  let i = 0;
  bench.add("emit, enabled", () => {
    setEnabledEvents(regions.trace, selectEvents(""));
    for (let k = 0; k < 1000; k++) on.emit(TRACE.bql_released, 1, i++);
  });
  bench.add("emit, disabled", () => {
    setEnabledEvents(regions.trace, []);
    for (let k = 0; k < 1000; k++) on.emit(TRACE.bql_released, 1, i++);
  });
  await bench.run();
  const out: Record<string, number> = {};
  for (const t of bench.tasks) out[`${t.name} ns`] = Math.round(((t.result?.latency.p50 ?? NaN) * 1e6) / 1000);
  return out;
}

function startVm(args: string[]): { proc: ChildProcess; out: () => string } {
  const proc = spawn(process.execPath, [join(repo, "bin/minivm.js"), "run", ...args], { stdio: ["pipe", "pipe", "ignore"] });
  let text = "";
  proc.stdout?.on("data", (d: Buffer) => (text += d.toString()));
  return { proc, out: () => text };
}

async function until(g: { proc: ChildProcess; out: () => string }, from: number, needle: string): Promise<number> {
  const t0 = performance.now();
  while (!g.out().slice(from).includes(needle)) {
    if (performance.now() - t0 > 120_000) throw new Error(`no '${needle}': ${g.out().slice(-300)}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return g.out().length;
}

/** Kill a VM and wait until it is gone, so its teardown does not land in the next measurement. */
async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode === null && p.signalCode === null) {
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await gone;
  }
  await new Promise((r) => setTimeout(r, 200));
}

/** The guest's `bench cpu` milliseconds, through the core loop (slices, BQL, trace points). */
async function guestCpuMs(traceEvents: string): Promise<number> {
  const disk = join(dir, `disk-${Math.random().toString(36).slice(2)}.img`);
  copyFileSync(join(repo, "firmware/build/disk.img"), disk);
  const g = startVm([disk, "--trace-events", traceEvents]);
  let at = await until(g, 0, PROMPT);
  g.proc.stdin?.write("bench cpu 3000000\n");
  at = await until(g, at, PROMPT);
  const m = /bench cpu: iterations=\d+ ms=(\d+)/.exec(g.out());
  await stop(g.proc);
  if (m === null) throw new Error(`no bench cpu line: ${g.out().slice(-300)}`);
  void at;
  return Number(m[1]);
}

/** In-band query-status round trips, µs. */
async function qmpLatency(traceEvents: string, n = 2000): Promise<number[]> {
  const sock = join(dir, `q-${Math.random().toString(36).slice(2)}.sock`);
  const g = startVm(["-S", "--bios", "none", "--qmp", `unix:${sock},server=on,wait=off`, "--trace-events", traceEvents]);
  let c: QmpClient | null = null;
  for (let i = 0; i < 300 && c === null; i++) {
    try {
      c = await QmpClient.connect(`unix:${sock}`);
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (c === null) throw new Error("no QMP");
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await c.execute("query-status");
    out.push((performance.now() - t0) * 1000);
  }
  c.close();
  await stop(g.proc);
  return out;
}

const emit = await emitCost();
const cpuOn: number[] = [];
const cpuOff: number[] = [];
const qOn: number[] = [];
const qOff: number[] = [];
// Interleaved, and in alternating order, so machine load and start-up effects skew both alike.
for (let r = 0; r < ROUNDS; r++) {
  const order: Array<"on" | "off"> = r % 2 === 0 ? ["off", "on"] : ["on", "off"];
  for (const which of order) {
    const events = which === "on" ? "*" : "-*";
    (which === "on" ? cpuOn : cpuOff).push(await guestCpuMs(events));
    (which === "on" ? qOn : qOff).push(...(await qmpLatency(events)));
  }
}
rmSync(dir, { recursive: true, force: true });
const pct = (on: number, off: number) => Math.round(((on - off) / off) * 1000) / 10;
const result = {
  suite: "trace",
  emit,
  guest_bench_cpu_ms: {
    tracing_off: quantile(cpuOff, 0.5),
    tracing_on: quantile(cpuOn, 0.5),
    overhead_percent: pct(quantile(cpuOn, 0.5), quantile(cpuOff, 0.5)),
    samples_off: cpuOff,
    samples_on: cpuOn,
  },
  qmp_query_status_us: {
    tracing_off: { p50: Math.round(quantile(qOff, 0.5)), p99: Math.round(quantile(qOff, 0.99)) },
    tracing_on: { p50: Math.round(quantile(qOn, 0.5)), p99: Math.round(quantile(qOn, 0.99)) },
    overhead_percent_p50: pct(quantile(qOn, 0.5), quantile(qOff, 0.5)),
  },
  target: "tracing on within 3% of tracing off",
};
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
