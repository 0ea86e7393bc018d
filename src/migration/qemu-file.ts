// QEMU's QEMUFile (migration/qemu-file.c) over Node streams: a buffered big-endian writer
// with back-pressure and sticky errors, and a buffered reader whose callers await data only
// when what they need is not already buffered. Everything the migration stream, the RAM
// section and the loader put on or take off the wire goes through one of these.

import type { Readable, Writable } from "node:stream";

/** Bytes the writer gathers before handing them to the sink (QEMU's IO_BUF_SIZE is 32 KiB). */
export const WRITER_BUFFER_BYTES = 32 * 1024;

/**
 * The input ended inside something that must be whole. QEMU reports a short read as an I/O
 * error on the file, which qemu_loadvm_state turns into "load of migration failed:
 * Input/output error"; the message keeps those words and adds where the input ended.
 */
export class StreamEndedError extends Error {
  constructor(
    readonly offset: number,
    readonly wanted: number,
  ) {
    super(`load of migration failed: Input/output error: the stream ended after ${offset} bytes, ${wanted} more needed`);
  }
}

type Sink = NodeJS.WritableStream | Writable;

/** Writes QEMU's encoding to a stream; put* never block, flush() waits for the sink. */
export class QemuFileWriter {
  private buf = new Uint8Array(WRITER_BUFFER_BYTES);
  private view = new DataView(this.buf.buffer);
  private len = 0;
  private queued = 0;
  private handed = 0;
  private err: Error | null = null;
  private needDrain = false;
  /** Set by end(): a close after it is ours, not the peer's. */
  private ending = false;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly sink: Sink) {
    sink.on("error", (e: Error) => this.fail(e));
    sink.on("drain", () => this.wake());
    sink.on("close", () => {
      // A sink that closes with our data still unwritten lost it (e.g. the peer went away).
      if (this.needDrain) this.fail(new Error("the migration channel closed before its data was written"));
      // Closed under us while idle (a socket whose peer died is destroyed without an 'error'
      // when nothing was being written): the next write must fail, not wait for a 'drain'
      // that a destroyed stream never emits.
      else if (!this.ending) this.fail(new Error("Unable to write to socket: Broken pipe"));
    });
  }

  /** Bytes put so far, buffered or not (QEMU's transferred count as the RAM code keeps it). */
  get bytesWritten(): number {
    return this.queued;
  }

  /** The stream is complete and the caller is about to close the sink: a close is no error now. */
  expectClose(): void {
    this.ending = true;
  }

  /** Bytes handed to the sink so far. */
  get bytesFlushed(): number {
    return this.handed;
  }

  /** The first error the sink reported, or null (qemu_file_get_error). */
  get error(): Error | null {
    return this.err;
  }

  private fail(e: Error): void {
    if (this.err === null) this.err = e;
    this.wake();
  }

  private wake(): void {
    this.needDrain = false;
    for (const w of this.waiters.splice(0)) w();
  }

  private check(): void {
    if (this.err !== null) throw this.err;
  }

  private room(n: number): void {
    this.check();
    if (this.len + n <= this.buf.length) return;
    this.spill();
    if (n > this.buf.length) {
      this.buf = new Uint8Array(n);
      this.view = new DataView(this.buf.buffer);
    }
  }

  /** Hand the buffered bytes to the sink without waiting (it queues them). */
  private spill(): void {
    if (this.len === 0) return;
    if ((this.sink as Partial<Writable>).destroyed === true) {
      this.fail(new Error("Unable to write to socket: Broken pipe"));
      this.check();
    }
    const out = this.buf.slice(0, this.len);
    this.handed += this.len;
    this.len = 0;
    if (!this.sink.write(out)) this.needDrain = true;
  }

  put8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v & 0xff;
    this.queued += 1;
  }

  put16(v: number): void {
    this.room(2);
    this.view.setUint16(this.len, v & 0xffff);
    this.len += 2;
    this.queued += 2;
  }

  put32(v: number): void {
    this.room(4);
    this.view.setUint32(this.len, v >>> 0);
    this.len += 4;
    this.queued += 4;
  }

  put64(v: bigint): void {
    this.room(8);
    this.view.setBigUint64(this.len, BigInt.asUintN(64, v));
    this.len += 8;
    this.queued += 8;
  }

  /** A 64-bit value given as a safe integer (RAM offsets and sizes; no bigint on the hot path). */
  put64n(v: number): void {
    this.room(8);
    this.view.setUint32(this.len, Math.floor(v / 0x100000000));
    this.view.setUint32(this.len + 4, v >>> 0);
    this.len += 8;
    this.queued += 8;
  }

  putBytes(b: Uint8Array): void {
    if (b.length > this.buf.length - this.len && b.length >= this.buf.length) {
      // Large buffers skip the copy into ours.
      this.check();
      this.spill();
      this.handed += b.length;
      this.queued += b.length;
      if (!this.sink.write(b.slice())) this.needDrain = true;
      return;
    }
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    this.queued += b.length;
  }

  /** u8 length + bytes (qemu_put_counted_string); the string is at most 255 bytes. */
  putCountedString(s: string): void {
    const b = Buffer.from(s, "utf8");
    if (b.length > 255) throw new Error(`counted string of ${b.length} bytes is longer than 255: ${s.slice(0, 40)}...`);
    this.put8(b.length);
    this.putBytes(b);
  }

  /**
   * Hand everything to the sink and wait until it accepts more (its 'drain'), or reject with
   * the sink's error (qemu_fflush).
   */
  async flush(): Promise<void> {
    this.check();
    this.spill();
    while (this.needDrain && this.err === null) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.check();
  }
}

/** Reads QEMU's encoding from a stream. */
export class QemuFileReader {
  private readonly chunks: Uint8Array[] = [];
  /** Read position in chunks[0]. */
  private head = 0;
  private buffered = 0;
  private consumed = 0;
  private done = false;
  private readonly it: AsyncIterator<unknown>;
  private head0: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(new ArrayBuffer(0));

  constructor(source: Readable | AsyncIterable<Uint8Array>) {
    this.it = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  /** Bytes consumed so far. */
  get bytesRead(): number {
    return this.consumed;
  }

  /** Bytes buffered and not yet consumed. */
  get available(): number {
    return this.buffered;
  }

  /** True once the source has ended (buffered bytes may remain). */
  get ended(): boolean {
    return this.done;
  }

  private setHead(): void {
    this.head0 = this.chunks.length > 0 ? this.chunks[0] : new Uint8Array(0);
    this.view = new DataView(this.head0.buffer, this.head0.byteOffset, this.head0.byteLength);
  }

  /** Pull one more chunk from the source; false at its end. */
  private async pull(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done === true) {
      this.done = true;
      return false;
    }
    const v = r.value;
    const c = typeof v === "string" ? Buffer.from(v, "latin1") : v instanceof Uint8Array ? v : Buffer.from(v as ArrayBuffer);
    if (c.length > 0) {
      this.chunks.push(c);
      this.buffered += c.length;
      if (this.chunks.length === 1) this.setHead();
    }
    return true;
  }

  /** True when the next `n` bytes are buffered contiguously, so the sync getters may run. */
  has(n: number): boolean {
    return this.head0.length - this.head >= n;
  }

  /**
   * Buffer at least `n` bytes (or everything up to the end of input) and make the first `n`
   * contiguous. Returns false when the input ends first.
   */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (!(await this.pull())) break;
    }
    if (this.buffered === 0) return n === 0;
    if (!this.has(Math.min(n, this.buffered))) this.coalesce(Math.min(n, this.buffered));
    return this.buffered >= n;
  }

  /** Join chunks so that the first `n` buffered bytes are in chunks[0]. */
  private coalesce(n: number): void {
    const out = new Uint8Array(Math.max(n, 0));
    let got = 0;
    while (got < n) {
      const c = this.chunks[0];
      const take = Math.min(c.length - this.head, n - got);
      out.set(c.subarray(this.head, this.head + take), got);
      got += take;
      if (this.head + take === c.length) {
        this.chunks.shift();
        this.head = 0;
      } else {
        this.head += take;
      }
    }
    // What is left of the old first chunk stays next.
    if (this.head > 0) {
      this.chunks[0] = this.chunks[0].subarray(this.head);
      this.head = 0;
    }
    this.chunks.unshift(out);
    this.setHead();
  }

  private need(n: number): Promise<void> | void {
    if (this.has(n)) return;
    return this.fill(n).then((ok) => {
      if (!ok) throw new StreamEndedError(this.consumed + this.buffered, n - this.buffered);
    });
  }

  private advance(n: number): void {
    this.head += n;
    this.buffered -= n;
    this.consumed += n;
    if (this.head === this.head0.length) {
      this.chunks.shift();
      this.head = 0;
      this.setHead();
    }
  }

  // Sync getters: the caller has checked has(n) or awaited fill(n)/ensure(n).

  u8(): number {
    const v = this.head0[this.head];
    this.advance(1);
    return v;
  }

  be16(): number {
    const v = this.view.getUint16(this.head);
    this.advance(2);
    return v;
  }

  be32(): number {
    const v = this.view.getUint32(this.head);
    this.advance(4);
    return v;
  }

  /** A 64-bit value as a number; exact up to 2^53 (RAM offsets with their flags). */
  be64n(): number {
    const v = this.view.getUint32(this.head) * 0x100000000 + this.view.getUint32(this.head + 4);
    this.advance(8);
    return v;
  }

  be64(): bigint {
    const v = this.view.getBigUint64(this.head);
    this.advance(8);
    return v;
  }

  /** Copy the next dst.length bytes into dst. */
  bytesInto(dst: Uint8Array): void {
    dst.set(this.head0.subarray(this.head, this.head + dst.length));
    this.advance(dst.length);
  }

  /** The buffered bytes from here, without consuming them (at most what fill() made contiguous). */
  peekContiguous(): Uint8Array {
    return this.head0.subarray(this.head);
  }

  /** Consume `n` bytes already seen through peekContiguous(). */
  consume(n: number): void {
    if (!this.has(n)) throw new Error(`consume(${n}) with only ${this.head0.length - this.head} bytes contiguous`);
    this.advance(n);
  }

  /** Wait until `n` bytes are buffered contiguously; throws StreamEndedError at end of input. */
  async ensure(n: number): Promise<void> {
    await this.need(n);
  }

  // Async getters: QEMU's qemu_get_*; they throw StreamEndedError at end of input.

  async get8(): Promise<number> {
    if (!this.has(1)) await this.need(1);
    return this.u8();
  }

  async get16(): Promise<number> {
    if (!this.has(2)) await this.need(2);
    return this.be16();
  }

  async get32(): Promise<number> {
    if (!this.has(4)) await this.need(4);
    return this.be32();
  }

  async get64(): Promise<bigint> {
    if (!this.has(8)) await this.need(8);
    return this.be64();
  }

  async getBytes(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    // Copy chunk by chunk so a large read does not first coalesce the whole input.
    while (got < n) {
      if (this.head0.length - this.head === 0 && !(await this.pull()) && this.buffered === 0) {
        throw new StreamEndedError(this.consumed, n - got);
      }
      if (this.head0.length - this.head === 0) continue;
      const take = Math.min(this.head0.length - this.head, n - got);
      out.set(this.head0.subarray(this.head, this.head + take), got);
      got += take;
      this.advance(take);
    }
    return out;
  }

  /** Discard `n` bytes. */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.head0.length - this.head === 0 && !(await this.pull()) && this.buffered === 0) {
        throw new StreamEndedError(this.consumed, left);
      }
      const take = Math.min(this.head0.length - this.head, left);
      if (take > 0) this.advance(take);
      left -= take;
    }
  }

  /** u8 length + bytes (qemu_get_counted_string), decoded as UTF-8. */
  async getCountedString(): Promise<string> {
    const len = await this.get8();
    if (!this.has(len)) await this.need(len);
    const s = Buffer.from(this.head0.buffer, this.head0.byteOffset + this.head, len).toString("utf8");
    this.advance(len);
    return s;
  }

  /** One byte more, or -1 at the end of input, without consuming it (qemu_peek_byte). */
  async peek8(): Promise<number> {
    if (!this.has(1) && !(await this.fill(1))) return -1;
    return this.head0[this.head];
  }
}
