// The I/O pool's worker (run by piscina in a worker thread): performs a batch of blocking
// file operations and (de)compressions so that the core thread never waits on the disk.
// File descriptors are process-wide, so the core thread opens files and passes numbers.

import { fdatasyncSync, readSync, writeSync } from "node:fs";
import { constants as zc, deflateRawSync, inflateRawSync } from "node:zlib";
import { move } from "piscina";

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

/**
 * A batch of preads/pwrites/fdatasyncs packed into typed arrays, because structured clone of
 * typed arrays is far cheaper than of many small objects: `meta` holds [op, fd, offset, length]
 * per request (op 0 pread, 1 pwrite, 2 fdatasync), `payload` the write data back to back.
 */
export interface PackedBatch {
  meta: Float64Array;
  payload: Uint8Array;
}

/** Per request 0 (ok) or 1 + index into `errors`; read data back to back in `data`. */
export interface PackedResult {
  status: Int32Array;
  errors: Array<{ error: string; code?: string }>;
  data: Uint8Array;
}

export const OP_PREAD = 0;
export const OP_PWRITE = 1;
export const OP_FDATASYNC = 2;

export function runPacked(b: PackedBatch): PackedResult {
  const n = b.meta.length / 4;
  let readBytes = 0;
  for (let i = 0; i < n; i++) if (b.meta[4 * i] === OP_PREAD) readBytes += b.meta[4 * i + 3];
  // One buffer: n int32 statuses, then the read data, so a clean batch can be moved whole.
  const buf = new Uint8Array(4 * n + readBytes);
  const status = new Int32Array(buf.buffer, 0, n);
  const data = buf.subarray(4 * n);
  const errors: PackedResult["errors"] = [];
  let rpos = 0;
  let wpos = 0;
  for (let i = 0; i < n; i++) {
    const op = b.meta[4 * i];
    const fd = b.meta[4 * i + 1];
    const offset = b.meta[4 * i + 2];
    const length = b.meta[4 * i + 3];
    try {
      if (op === OP_PREAD) {
        let done = 0;
        while (done < length) {
          const got = readSync(fd, data, rpos + done, length - done, offset + done);
          if (got === 0) break;
          done += got;
        }
      } else if (op === OP_PWRITE) {
        pwrite(fd, offset, b.payload.subarray(wpos, wpos + length));
      } else {
        fdatasyncSync(fd);
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      errors.push({ error: err.message, code: err.code });
      status[i] = errors.length;
    }
    if (op === OP_PREAD) rpos += length;
    else if (op === OP_PWRITE) wpos += length;
  }
  return { status, errors, data };
}

/**
 * The piscina entry points: `batch` for packed file I/O, `single` for (de)compression. A batch
 * without errors comes back as one transferred buffer, [status × n as int32][read data], so
 * the read data is moved to the calling thread rather than copied.
 */
export function batch(b: PackedBatch): PackedResult | Uint8Array {
  const r = runPacked(b);
  if (r.errors.length) return r;
  return move(new Uint8Array(r.data.buffer)) as Uint8Array;
}

export function single(op: IoOp): IoResult {
  return runOp(op);
}
