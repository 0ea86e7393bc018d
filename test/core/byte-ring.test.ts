// The serial rings: a lock-free single-producer/single-consumer byte ring in shared memory.
// The producer thread blocks only while the ring is full; the consumer never blocks.

import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { ByteRing, pumpRing } from "../../src/core/byte-ring.js";

const BUILT_RING = pathToFileURL(join(import.meta.dirname, "../../dist/src/core/byte-ring.js")).href;

/** A worker that writes `total` bytes (i & 0xff) in chunks of `chunk` with writeAll, then says "done". */
function producer(buffer: SharedArrayBuffer, total: number, chunk: number): Worker {
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(${JSON.stringify(BUILT_RING)}).then(({ ByteRing }) => {
      const ring = new ByteRing(workerData.buffer);
      for (let at = 0; at < workerData.total; at += workerData.chunk) {
        const n = Math.min(workerData.chunk, workerData.total - at);
        const bytes = new Uint8Array(n);
        for (let i = 0; i < n; i++) bytes[i] = (at + i) & 0xff;
        ring.writeAll(bytes);
      }
      ring.notifyReader();
      parentPort.postMessage("done");
    });`;
  return new Worker(code, { eval: true, workerData: { buffer, total, chunk } });
}

describe("serial byte ring", () => {
  it("keeps bytes in order across the wrap, and takes only what fits", () => {
    const ring = new ByteRing(ByteRing.create(16));
    const seen: number[] = [];
    let next = 0;
    for (let round = 0; round < 20; round++) {
      const chunk = Uint8Array.from({ length: 7 }, () => next++ & 0xff);
      const n = ring.write(chunk);
      next -= chunk.length - n;
      seen.push(...(ring.read() ?? []));
    }
    expect(seen).toEqual(Array.from({ length: next }, (_, i) => i & 0xff));
    expect(ring.write(new Uint8Array(20))).toBe(16);
    expect(ring.free()).toBe(0);
    expect(ring.write(Uint8Array.of(1))).toBe(0);
    expect(ring.read()?.length).toBe(16);
    expect(ring.read()).toBeNull();
    expect(() => ByteRing.create(24)).toThrow(/power of two/);
  });

  it("loses nothing when a producer thread outruns a reader that waits on this thread's event loop", async () => {
    const buffer = ByteRing.create(64);
    const ring = new ByteRing(buffer);
    const total = 200_000;
    const got = new Uint8Array(total);
    let n = 0;
    const pump = pumpRing(ring, (bytes) => {
      got.set(bytes, n);
      n += bytes.length;
    });
    const w = producer(buffer, total, 1000);
    await new Promise<void>((resolve, reject) => {
      w.once("message", () => resolve());
      w.once("error", reject);
    });
    pump.stop();
    await w.terminate();
    expect(n).toBe(total);
    expect(got.every((b, i) => b === (i & 0xff))).toBe(true);
    // The ring was full many times: the producer waited rather than dropped.
    expect(ring.producerWaits).toBeGreaterThan(0);
  });

  it("releases a producer waiting on a full ring once the reader closes it", async () => {
    const buffer = ByteRing.create(16);
    const ring = new ByteRing(buffer);
    const w = producer(buffer, 100, 100);
    const done = new Promise<void>((resolve, reject) => {
      w.once("message", () => resolve());
      w.once("error", reject);
    });
    // Wait for the producer to fill the ring and sleep, then close instead of reading.
    while (ring.producerWaits === 0) await ring.waitForData();
    ring.close();
    await done;
    await w.terminate();
    expect(ring.available()).toBe(16);
  });
});
