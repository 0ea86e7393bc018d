// The data-moving halves of `img convert`, `compare`, `map` and `bench` (qemu-img.c), kept
// free of option parsing and printing so tests and the CLI share them.

import type { BlockDriver, BlockExtent } from "./driver.js";

const CHUNK = 2 * 1024 * 1024;

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Extents of the whole chain as `qemu-img map` merges them. */
export async function mapImage(d: BlockDriver, start = 0, maxLength = d.size - start): Promise<BlockExtent[]> {
  const out: BlockExtent[] = [];
  const end = Math.min(d.size, start + maxLength);
  for (let pos = start; pos < end; ) {
    const e = await d.blockStatus(pos, Math.min(end - pos, 1 << 30));
    const last = out[out.length - 1];
    const contiguous = last && (last.offset === undefined) === (e.offset === undefined) && (last.offset === undefined || last.offset + last.length === e.offset);
    if (last && contiguous && last.depth === e.depth && last.present === e.present && last.zero === e.zero && last.data === e.data && last.compressed === e.compressed) last.length += e.length;
    else out.push({ ...e });
    pos += e.length;
  }
  return out;
}

/** What `convert -c` needs from the target: qcow2's compressed cluster write. */
export interface CompressedTarget {
  writeCompressed(cluster: number, data: Uint8Array): Promise<void>;
}

/**
 * Copies guest contents; zero and unallocated ranges of the source are skipped (sparse
 * output). With `compressed`, every non-zero target cluster is written compressed.
 */
export async function convertImage(src: BlockDriver, dst: BlockDriver, progress?: (pct: number) => void, compressed?: CompressedTarget): Promise<void> {
  const size = src.size;
  let done = 0;
  progress?.(0);
  // Compressed output goes cluster by cluster, so chunks start on cluster boundaries.
  const chunk = compressed ? Math.max(CHUNK, dst.clusterSize!) : CHUNK;
  for (let pos = 0; pos < size; ) {
    let e = await src.blockStatus(pos, Math.min(size - pos, chunk));
    if (compressed) {
      // Extents of the source need not align with target clusters: copy whole clusters.
      const cs = dst.clusterSize!;
      const end = Math.min(size, Math.ceil((pos + e.length) / cs) * cs);
      e = { ...e, length: end - pos, data: true };
    }
    if (e.data) {
      // The next chunk is read while this one is written.
      const end = pos + e.length;
      let next: Promise<Uint8Array> | null = src.read(pos, Math.min(CHUNK, end - pos));
      for (let o = pos; o < end; o += CHUNK) {
        const n = Math.min(CHUNK, end - o);
        const buf: Uint8Array = await next!;
        next = o + CHUNK < end ? src.read(o + CHUNK, Math.min(CHUNK, end - o - CHUNK)) : null;
        // Write only non-zero pieces, as qemu-img's zero detection does; runs in one request.
        const step = compressed ? dst.clusterSize! : 65536;
        let runStart = -1;
        for (let k = 0; k < n; k += step) {
          const piece = buf.subarray(k, Math.min(n, k + step));
          const zero = isZero(piece);
          if (compressed) {
            if (!zero) await compressed.writeCompressed((o + k) / step, piece);
            continue;
          }
          if (!zero && runStart < 0) runStart = k;
          if (zero && runStart >= 0) {
            await dst.write(o + runStart, buf.subarray(runStart, k));
            runStart = -1;
          }
        }
        if (runStart >= 0) await dst.write(o + runStart, buf.subarray(runStart, n));
      }
    } else if (e.zero && dst.backing) {
      await dst.writeZeroes(pos, e.length, false);
    }
    pos += e.length;
    done = pos;
    progress?.((done / size) * 100);
  }
  await dst.flush();
  progress?.(100);
}

export type CompareResult = { identical: true } | { identical: false; offset: number } | { sizeMismatch: true } | { statusMismatch: number };

/**
 * First offset where the block status words differ, as img_compare's strict mode compares
 * them: allocated, zero, data, offset-valid, and EOF (the extent reaches the image's end).
 */
async function firstStatusMismatch(a: BlockDriver, b: BlockDriver, size: number): Promise<number> {
  const word = (e: BlockExtent, pos: number, total: number): string => `${e.present}|${e.zero}|${e.data}|${e.offset !== undefined}|${pos + e.length === total}`;
  for (let pos = 0; pos < size; ) {
    const [x, y] = await Promise.all([a.blockStatus(pos, a.size - pos), b.blockStatus(pos, b.size - pos)]);
    if (word(x, pos, a.size) !== word(y, pos, b.size)) return pos;
    pos += Math.min(x.length, y.length);
  }
  return Infinity;
}

/** qemu-img compare: unallocated reads as zero; a longer image must be zero past the shorter. */
export async function compareImages(a: BlockDriver, b: BlockDriver, strict: boolean): Promise<CompareResult & { warning?: string }> {
  if (strict && a.size !== b.size) return { sizeMismatch: true };
  const common = Math.min(a.size, b.size);
  // Strict mode also compares allocation; QEMU reports whichever difference comes first.
  const status = strict ? await firstStatusMismatch(a, b, common) : Infinity;
  for (let pos = 0; pos < Math.min(common, status); pos += CHUNK) {
    const n = Math.min(CHUNK, common - pos);
    const [x, y] = await Promise.all([a.read(pos, n), b.read(pos, n)]);
    for (let i = 0; i < n; i++) if (x[i] !== y[i] && pos + i < status) return { identical: false, offset: pos + (i & ~511) };
  }
  if (status !== Infinity) return { statusMismatch: status };
  const longer = a.size > b.size ? a : b;
  for (let pos = common; pos < longer.size; pos += CHUNK) {
    const n = Math.min(CHUNK, longer.size - pos);
    const x = await longer.read(pos, n);
    for (let i = 0; i < n; i++) if (x[i] !== 0) return { identical: false, offset: pos + (i & ~511), warning: "Warning: Image size mismatch!" };
  }
  return a.size !== b.size ? { identical: true, warning: "Warning: Image size mismatch!" } : { identical: true };
}

export interface BenchOptions {
  count: number;
  depth: number;
  bufSize: number;
  step: number;
  offset: number;
  write: boolean;
  pattern: number;
  flushInterval: number;
  drain: boolean;
}

/**
 * qemu-img bench: `count` requests of `bufSize` bytes, `depth` in flight, the offset advancing
 * by `step` modulo the image size. Returns the elapsed seconds.
 */
export async function bench(d: BlockDriver, o: BenchOptions): Promise<number> {
  const buf = new Uint8Array(o.bufSize).fill(o.pattern);
  let offset = o.offset;
  let issued = 0;
  let sinceFlush = 0;
  const t0 = process.hrtime.bigint();
  // QEMU 7.2's bench_cb: the offset advances by `step` modulo the image size.
  const next = (): number => {
    const off = offset;
    offset = d.size === 0 ? 0 : (offset + o.step) % d.size;
    return off;
  };
  const worker = async (): Promise<void> => {
    while (issued < o.count) {
      issued++;
      const off = next();
      try {
        if (o.write) await d.write(off, buf);
        else await d.read(off, o.bufSize);
      } catch {
        throw new Error("Failed request: Input/output error");
      }
      if (o.write && o.flushInterval && ++sinceFlush >= o.flushInterval) {
        sinceFlush = 0;
        await d.flush();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.depth) }, worker));
  if (o.write && o.flushInterval && o.drain) await d.flush();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
