// The I/O pool's worker (run by piscina in a worker thread): performs a batch of blocking
// file operations and (de)compressions so that the core thread never waits on the disk.
// File descriptors are process-wide, so the core thread opens files and passes numbers.

import { fdatasyncSync, readSync, writeSync } from "node:fs";
import { constants as zc, deflateRawSync, inflateRawSync } from "node:zlib";

export type IoOp =
  | { op: "pread"; fd: number; offset: number; length: number }
  | { op: "pwrite"; fd: number; offset: number; data: Uint8Array }
  | { op: "fdatasync"; fd: number }
  | { op: "inflate"; data: Uint8Array; outLength: number }
  | { op: "deflate"; data: Uint8Array };

/** Per op: the bytes read/produced, null for writes and syncs, or an error message. */
export type IoResult = Uint8Array | null | { error: string; code?: string };

/** Reads until `length` bytes or end of file; the rest stays zero, as a read past EOF does in QEMU. */
function pread(fd: number, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return buf;
}

function pwrite(fd: number, offset: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, offset + done);
}

/** Runs one op; exported so the in-process fallback uses exactly the same code. */
export function runOp(o: IoOp): IoResult {
  try {
    switch (o.op) {
      case "pread":
        return pread(o.fd, o.offset, o.length);
      case "pwrite":
        pwrite(o.fd, o.offset, o.data);
        return null;
      case "fdatasync":
        fdatasyncSync(o.fd);
        return null;
      case "inflate": {
        // QEMU stores raw deflate; the stream may be followed by padding up to the sector end.
        const out = inflateRawSync(o.data, { finishFlush: zc.Z_SYNC_FLUSH, maxOutputLength: o.outLength });
        return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      }
      case "deflate": {
        const out = deflateRawSync(o.data, { level: 6 });
        return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      }
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { error: err.message, code: err.code };
  }
}

/** The piscina entry point (`name: "batch"`): one message carries many ops. */
export function batch(ops: IoOp[]): IoResult[] {
  return ops.map(runOp);
}
