// The shared regions' hot operations: the dirty-marking path (steady state and first touch),
// a watched-page DMA write, and console output through the serial ring from a producer thread
// to a reader on this thread's event loop (bytes per second, with the ring full most of the time).
// Prints JSON.
//
//   npm run build && node dist/bench/regions.js

import { Worker } from "node:worker_threads";
import { Bench } from "tinybench";
import { ByteRing, pumpRing } from "../src/core/byte-ring.js";
import { RAM_BASE } from "../src/core/board.js";
import { Ram } from "../src/memory/ram.js";
import { markDirtyRange, markPageDirty } from "../src/memory/write-tracking.js";

const RAM_SIZE = 128 << 20;
const PAGES = RAM_SIZE >>> 12;
const ram = new Ram(RAM_BASE, RAM_SIZE);

const bench = new Bench({ time: 500, warmupTime: 100 });
// 32768 markings per iteration, so tinybench's own per-iteration cost does not count.
bench.add("markPageDirty x 32768, bits already set", () => {
  for (let p = 0; p < PAGES; p++) markPageDirty(ram.dirty, p);
});
bench.add("markPageDirty x 32768, bitmap cleared first (Atomics.or each)", () => {
  ram.dirty.fill(0);
  for (let p = 0; p < PAGES; p++) markPageDirty(ram.dirty, p);
});
bench.add("markDirtyRange over 128 MiB", () => {
  markDirtyRange(ram.dirty, 0, RAM_SIZE);
});
const block = new Uint8Array(4096);
ram.tracking.setListener(() => undefined);
ram.tracking.watch(1);
bench.add("dmaWrite 4 KiB, unwatched page", () => {
  ram.dmaWrite(RAM_BASE, block);
});
bench.add("dmaWrite 4 KiB, watched page", () => {
  ram.dmaWrite(RAM_BASE + 4096, block);
});
await bench.run();

const us = (v: number | undefined) => (v === undefined ? null : Math.round(v * 1000 * 100) / 100);
const results: Record<string, unknown>[] = bench.tasks.map((t) => ({
  name: t.name,
  median_us: us(t.result?.latency?.p50),
  p99_us: us(t.result?.latency?.p99),
  samples: t.result?.latency?.samples?.length ?? 0,
}));

/** MiB/s of console output through a ring of `capacity` bytes, producer in a worker. */
async function ringThroughput(capacity: number, total: number, chunk: number): Promise<Record<string, unknown>> {
  const buffer = ByteRing.create(capacity);
  const ring = new ByteRing(buffer);
  let got = 0;
  const t0 = performance.now();
  const pump = pumpRing(ring, (b) => (got += b.length));
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(${JSON.stringify(new URL("../src/core/byte-ring.js", import.meta.url).href)}).then(({ ByteRing }) => {
      const ring = new ByteRing(workerData.buffer);
      const bytes = new Uint8Array(workerData.chunk).fill(0x41);
      for (let at = 0; at < workerData.total; at += workerData.chunk) ring.writeAll(bytes);
      ring.notifyReader();
      parentPort.postMessage("done");
    });`;
  const w = new Worker(code, { eval: true, workerData: { buffer, total, chunk } });
  await new Promise((r) => w.once("message", r));
  pump.stop();
  const ms = performance.now() - t0;
  await w.terminate();
  return { name: `serial ring ${capacity} B, ${chunk}-byte writes`, bytes: got, ms: Math.round(ms), mib_s: Math.round((got / (1 << 20) / (ms / 1000)) * 10) / 10, producerWaits: ring.producerWaits };
}
results.push(await ringThroughput(64 * 1024, 4 << 20, 1));
results.push(await ringThroughput(64 * 1024, 256 << 20, 256));

process.stdout.write(JSON.stringify({ suite: "regions", results }, null, 2) + "\n");
