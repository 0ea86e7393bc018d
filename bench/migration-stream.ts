// Migration stream throughput: the RAM section of a 128 MiB guest written to a null sink and
// loaded from memory, all-zero pages (ZERO records) and random pages (PAGE records).
// Prints JSON: MB/s (10^6 bytes of guest RAM per second) at the median and p99 iteration.
//
//   npm run build && node dist/bench/migration-stream.js

import { randomFillSync } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { Bench } from "tinybench";
import { QemuFileReader, QemuFileWriter } from "../src/migration/qemu-file.js";
import { RamLoader } from "../src/migration/ram-load.js";
import { RamSaver } from "../src/migration/ram-stream.js";
import { MigrationStreamWriter } from "../src/migration/stream.js";

const RAM_SIZE = 128 << 20;
const zero = new Uint8Array(new SharedArrayBuffer(RAM_SIZE));
const random = new Uint8Array(new SharedArrayBuffer(RAM_SIZE));
for (let off = 0; off < RAM_SIZE; off += 1 << 16) randomFillSync(random.subarray(off, off + (1 << 16)));
const dirty = new Int32Array(new SharedArrayBuffer(RAM_SIZE / 4096 / 8));

class NullSink extends Writable {
  override _write(_c: Buffer, _e: BufferEncoding, cb: () => void): void {
    cb();
  }
}

class Keep extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.chunks.push(c);
    cb();
  }
}

/** One RAM section (START with the block list, then END with every page) into `sink`. */
async function writeRam(ram: Uint8Array, sink: Writable): Promise<void> {
  const f = new QemuFileWriter(sink);
  const w = new MigrationStreamWriter(f);
  const saver = new RamSaver({ ram, dirty });
  w.ramStart(saver);
  await w.ramEnd(saver, { sync: false });
  await f.flush();
}

async function streamBytes(ram: Uint8Array): Promise<Buffer[]> {
  const keep = new Keep();
  await writeRam(ram, keep);
  // Re-chunk as a socket would deliver it.
  const all = Buffer.concat(keep.chunks);
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += 65536) out.push(all.subarray(i, i + 65536));
  return out;
}

const zeroStream = await streamBytes(zero);
const randomStream = await streamBytes(random);
const dst = new Uint8Array(new SharedArrayBuffer(RAM_SIZE));

async function loadRam(chunks: Buffer[]): Promise<void> {
  const r = new QemuFileReader(Readable.from(chunks));
  const loader = new RamLoader({ ram: dst });
  // Two RAM sections, each with its header (type + section id) and footer.
  for (let s = 0; s < 2; s++) {
    await r.skip(s === 0 ? 1 + 4 + 1 + 3 + 4 + 4 : 1 + 4);
    await loader.loadSection(r);
    await r.skip(5);
  }
}

const bench = new Bench({ time: 0, iterations: 8, warmupIterations: 1, warmupTime: 0 });
bench.add("write 128 MiB, all-zero pages", () => writeRam(zero, new NullSink()));
bench.add("write 128 MiB, random pages", () => writeRam(random, new NullSink()));
bench.add("load 128 MiB, all-zero pages", () => loadRam(zeroStream));
bench.add("load 128 MiB, random pages", () => loadRam(randomStream));
await bench.run();

const mbps = (ms: number | undefined) => (ms === undefined ? null : Math.round((RAM_SIZE / 1e6 / (ms / 1000)) * 10) / 10);
const results = bench.tasks.map((t) => ({
  name: t.name,
  median_MBps: mbps(t.result?.latency?.p50),
  p99_MBps: mbps(t.result?.latency?.p99),
  median_ms: t.result?.latency?.p50 ?? null,
  samples: t.result?.latency?.samples?.length ?? 0,
}));
const streamSize = (c: Buffer[]) => c.reduce((n, b) => n + b.length, 0);
process.stdout.write(
  JSON.stringify({ suite: "migration-stream", ram_bytes: RAM_SIZE, stream_bytes: { zero: streamSize(zeroStream), random: streamSize(randomStream) }, results }, null, 2) + "\n",
);
