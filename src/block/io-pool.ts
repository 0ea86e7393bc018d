// The block layer's I/O pool. Every read, write, flush and (de)compression returns a Promise;
// the blocking syscalls run in piscina worker threads (io-worker.js), several ops per message.
//
// The worker must be a compiled .js file next to this module. When this module is loaded from
// its .ts source (vitest runs the sources directly) there is no io-worker.js beside it, and the
// pool falls back to Node's own asynchronous fs calls, which run on libuv's thread pool: still
// off the calling thread, just not piscina. `kind` says which one is in use; MINIVM_IO_POOL=uv
// forces the fallback, MINIVM_IO_POOL=piscina makes a missing worker an error.

import { existsSync, fdatasync, read, write } from "node:fs";
import { fileURLToPath } from "node:url";
import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import { OP_FDATASYNC, OP_PREAD, OP_PWRITE, runOp, type IoOp, type IoResult, type PackedResult } from "./io-worker.js";

interface Pending {
  op: IoOp;
  resolve: (r: Uint8Array | null) => void;
  reject: (e: Error) => void;
}

export class IoError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const MAX_BATCH = 64;

export class IoPool {
  readonly kind: "piscina" | "uv";
  private readonly piscina: Piscina | null;
  private queue: Pending[] = [];
  private scheduled = false;
  /** Ops submitted and not yet completed (for tests and tracing). */
  inFlight = 0;
  /** A piscina worker has answered: batches go to the workers from now on. */
  private warm = false;

  constructor(opts: { threads?: number; kind?: "piscina" | "uv" } = {}) {
    const url = new URL("./io-worker.js", import.meta.url);
    const want = opts.kind ?? (process.env.MINIVM_IO_POOL as "piscina" | "uv" | undefined);
    const haveWorker = url.protocol === "file:" && existsSync(fileURLToPath(url));
    if (want === "piscina" && !haveWorker) throw new Error(`I/O worker ${url.href} not found: run \`npx tsc -p .\` first`);
    if (haveWorker && want !== "uv") {
      const threads = opts.threads ?? Math.max(2, Math.min(4, availableParallelism()));
      this.piscina = new Piscina({ filename: url.href, name: "batch", minThreads: threads, maxThreads: threads, idleTimeout: 60_000, concurrentTasksPerWorker: 1 });
      this.kind = "piscina";
      // An empty batch: it comes back once a worker has loaded.
      const meta = new Float64Array(0);
      const payload = new Uint8Array(0);
      this.piscina.run({ meta, payload }).then(
        () => (this.warm = true),
        () => (this.warm = true),
      );
    } else {
      this.piscina = null;
      this.kind = "uv";
    }
  }

  /**
   * Offsets come from image metadata, which may say anything up to 2^56 (qcow2's offset bits).
   * Past 2^53 no file reaches (nor can a JS number say exactly where), so a read there is a
   * read past the end of the file, all zeros as in QEMU's file driver, and a write fails as
   * pwrite(2) would on a file grown beyond its limit.
   */
  pread(fd: number, offset: number, length: number): Promise<Uint8Array> {
    if (!(offset + length <= Number.MAX_SAFE_INTEGER) || offset < 0) {
      if (offset < 0 || Number.isNaN(offset)) return Promise.reject(new IoError(`Invalid read offset ${offset}`, "EINVAL"));
      return Promise.resolve(new Uint8Array(length));
    }
    return this.submit({ op: "pread", fd, offset, length }) as Promise<Uint8Array>;
  }
  async pwrite(fd: number, offset: number, data: Uint8Array): Promise<void> {
    if (!(offset + data.length <= Number.MAX_SAFE_INTEGER) || offset < 0) throw new IoError("File too large", "EFBIG");
    await this.submit({ op: "pwrite", fd, offset, data });
  }
  async fdatasync(fd: number): Promise<void> {
    await this.submit({ op: "fdatasync", fd });
  }
  inflate(data: Uint8Array, outLength: number): Promise<Uint8Array> {
    return this.submit({ op: "inflate", data, outLength }) as Promise<Uint8Array>;
  }
  deflate(data: Uint8Array): Promise<Uint8Array> {
    return this.submit({ op: "deflate", data }) as Promise<Uint8Array>;
  }

  private submit(op: IoOp): Promise<Uint8Array | null> {
    this.inFlight++;
    // Until a worker has answered once, the libuv path serves: starting the workers takes
    // a few hundred milliseconds, and boot (opening images, the snapshot overlay) should not
    // wait for them. Each op is awaited by its caller, so mixing the two paths is safe.
    if (!this.piscina || !this.warm) return this.runUv(op);
    if (op.op === "inflate" || op.op === "deflate") {
      return this.piscina.run(op, { name: "single" }).then(
        (r: IoResult) => this.settleOne(r),
        (e: unknown) => this.settleOne({ error: e instanceof Error ? e.message : String(e) }),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // Ops issued in the same turn of the event loop travel in one message.
        setImmediate(() => this.dispatch());
      }
    });
  }

  private dispatch(): void {
    this.scheduled = false;
    const all = this.queue;
    this.queue = [];
    const threads = this.piscina!.threads.length || 1;
    const per = Math.min(MAX_BATCH, Math.max(1, Math.ceil(all.length / threads)));
    for (let i = 0; i < all.length; i += per) {
      const part = all.slice(i, i + per);
      const meta = new Float64Array(4 * part.length);
      let wbytes = 0;
      part.forEach((p, j) => {
        const o = p.op;
        if (o.op === "pread") meta.set([OP_PREAD, o.fd, o.offset, o.length], 4 * j);
        else if (o.op === "pwrite") {
          meta.set([OP_PWRITE, o.fd, o.offset, o.data.length], 4 * j);
          wbytes += o.data.length;
        } else if (o.op === "fdatasync") meta.set([OP_FDATASYNC, o.fd, 0, 0], 4 * j);
      });
      const payload = new Uint8Array(wbytes);
      let w = 0;
      for (const p of part) {
        if (p.op.op === "pwrite") {
          payload.set(p.op.data, w);
          w += p.op.data.length;
        }
      }
      this.piscina!.run({ meta, payload }, { transferList: [meta.buffer, payload.buffer] }).then(
        (res: PackedResult | Uint8Array) => {
          // Fast form: no errors, statuses all 0, data after 4 bytes per request.
          const r: PackedResult = res instanceof Uint8Array ? { status: new Int32Array(part.length), errors: [], data: res.subarray(4 * part.length) } : res;
          let rpos = 0;
          part.forEach((p, j) => {
            this.inFlight--;
            const st = r.status[j];
            if (st !== 0) {
              const e = r.errors[st - 1];
              p.reject(new IoError(e.error, e.code));
            } else if (p.op.op === "pread") {
              p.resolve(r.data.subarray(rpos, rpos + p.op.length));
            } else p.resolve(null);
            if (p.op.op === "pread") rpos += p.op.length;
          });
        },
        (e: unknown) =>
          part.forEach((p) => {
            this.inFlight--;
            p.reject(new IoError(e instanceof Error ? e.message : String(e), undefined));
          }),
      );
    }
  }

  private settleOne(r: IoResult): Uint8Array | null {
    this.inFlight--;
    if (r !== null && !(r instanceof Uint8Array)) throw new IoError(r.error, r.code);
    return r;
  }

  private runUv(op: IoOp): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      const done = (e: NodeJS.ErrnoException | null, v: Uint8Array | null): void => {
        this.inFlight--;
        if (e) reject(new IoError(e.message, e.code));
        else resolve(v);
      };
      switch (op.op) {
        case "pread": {
          const buf = new Uint8Array(op.length);
          const step = (got: number): void => {
            if (got >= op.length) return done(null, buf);
            read(op.fd, buf, got, op.length - got, op.offset + got, (e, n) => (e ? done(e, null) : n === 0 ? done(null, buf) : step(got + n)));
          };
          step(0);
          break;
        }
        case "pwrite": {
          const step = (put: number): void => {
            if (put >= op.data.length) return done(null, null);
            write(op.fd, op.data, put, op.data.length - put, op.offset + put, (e, n) => (e ? done(e, null) : step(put + n)));
          };
          step(0);
          break;
        }
        case "fdatasync":
          fdatasync(op.fd, (e) => done(e, null));
          break;
        default: {
          // zlib work is CPU-bound and short for one cluster; run it here.
          const r = runOp(op);
          if (r !== null && !(r instanceof Uint8Array)) done(Object.assign(new Error(r.error), { code: r.code }), null);
          else done(null, r);
        }
      }
    });
  }

  async close(): Promise<void> {
    await this.piscina?.destroy();
  }
}
