// What it costs a Node.js worker thread just to wake up 100 times a second, doing nothing
// else: the floor under an idle guest's cost (an idle teaching guest wakes the core thread
// once per 100 Hz tick; bench/boot measures the whole VM against QEMU). Three ways to sleep
// until an absolute deadline, each in its own worker, measured from the worker's
// /proc/self/task/TID/schedstat over a few seconds:
//   - sync:      a blocking Atomics.wait loop (a futex; the event loop never turns),
//   - waitAsync: Atomics.waitAsync, then the next wait from the promise's continuation (what
//                src/core/loop.ts does, so that the thread's event loop stays free),
//   - timer:     setTimeout.
// Prints JSON: percent of one core and microseconds of CPU per wake-up for each.
//
//   npm run build && node dist/bench/wake-floor.js        (or: npm run bench wake-floor)

import { readFileSync, readlinkSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

const HZ = 100;
const SECONDS = Number(process.env.MINIVM_BENCH_SECONDS ?? 4);
const MODES = ["sync", "waitAsync", "timer"] as const;
type Mode = (typeof MODES)[number];

function runTimeNs(tid: string): number {
  return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ")[0]);
}

async function measure(mode: Mode): Promise<{ mode: Mode; percentOfCore: number; usPerWakeup: number }> {
  const w = new Worker(new URL(import.meta.url), { workerData: mode });
  const tid = await new Promise<string>((resolve) => w.once("message", (m: string) => resolve(m)));
  // Let the worker settle (module loading, the first optimizations) before measuring.
  await new Promise((r) => setTimeout(r, 1000));
  const a = runTimeNs(tid);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const b = runTimeNs(tid);
  await w.terminate();
  const ns = b - a;
  return {
    mode,
    percentOfCore: Math.round((ns / (SECONDS * 1e9)) * 100 * 1000) / 1000,
    usPerWakeup: Math.round((ns / (SECONDS * HZ) / 1000) * 10) / 10,
  };
}

function sleeper(mode: Mode): void {
  const word = new Int32Array(new SharedArrayBuffer(4));
  const period = 1000 / HZ;
  let next = performance.now() + period;
  const step = (): void => {
    next += period;
    const ms = Math.max(0, next - performance.now());
    if (mode === "waitAsync") {
      const r = Atomics.waitAsync(word, 0, 0, ms);
      if (r.async) void r.value.then(step);
      else setImmediate(step);
    } else {
      setTimeout(step, ms);
    }
  };
  // "/proc/thread-self" links to "PID/task/TID".
  parentPort?.postMessage(readlinkSync("/proc/thread-self").split("/").pop());
  // A pending Atomics.waitAsync does not keep a worker alive; a listening port does (in
  // minivm the core thread's ports do the same).
  parentPort?.on("message", () => undefined);
  if (mode === "sync") {
    for (;;) {
      Atomics.wait(word, 0, 0, Math.max(0, next - performance.now()));
      next += period;
    }
  }
  step();
}

if (isMainThread) {
  const results = [];
  for (const mode of MODES) results.push(await measure(mode));
  console.log(JSON.stringify({ suite: "wake-floor", hz: HZ, seconds: SECONDS, results }, null, 2));
} else {
  sleeper(workerData as Mode);
}
