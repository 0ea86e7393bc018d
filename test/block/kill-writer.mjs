// Child process for the kill -9 test: writes and flushes in a loop through the compiled block
// layer (so the piscina I/O pool is used) and prints "ack N" once write N is flushed.
// Arguments: image, first sequence number, directory holding the compiled sources.
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [file, startArg, dist] = process.argv.slice(2);
const { openImage } = await import(pathToFileURL(join(dist, "src/block/image.js")).href);
const { IoPool } = await import(pathToFileURL(join(dist, "src/block/io-pool.js")).href);
const pool = new IoPool();
const d = await openImage(file, { pool });
process.stdout.write(`ready ${pool.kind}\n`);
const STRIDE = 5000;
const LEN = 3000;
export function pattern(seq) {
  const b = new Uint8Array(LEN);
  for (let i = 0; i < LEN; i++) b[i] = (seq * 31 + i * 7 + 1) & 0xff;
  return b;
}
let seq = Number(startArg);
// Batches of 8 concurrent writes, a flush every third batch: most kills land between flushes,
// with allocations and unflushed metadata in flight; only flushed writes are acknowledged.
for (let round = 1; ; round++) {
  const batch = [];
  for (let k = 0; k < 8; k++, seq++) batch.push(d.write((seq * STRIDE) % (d.size - LEN), pattern(seq)));
  await Promise.all(batch);
  if (round % 3 === 0) {
    await d.flush();
    process.stdout.write(`ack ${seq - 1}\n`);
  }
}
