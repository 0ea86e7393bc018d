// The raw format: guest offset = file offset. Reads past the end of the file read zeros
// (a raw image may be shorter than its nominal size only transiently, during creation).

import type { FileHandle } from "node:fs/promises";
import { checkRange, type BlockDriver, type BlockExtent } from "./driver.js";
import type { IoPool } from "./io-pool.js";
import type { ImageLock } from "./lock.js";
import { findAllocation } from "./seek-hole.js";

const ZERO_CHUNK = 1 << 20;

export class RawDriver implements BlockDriver {
  readonly format = "raw";
  readonly clusterSize = undefined;
  readonly backing = null;
  readonly backingFilename = undefined;
  readonly backingFormat = undefined;
  /** Released with the fd on close: OFD locks belong to the open file description. */
  imageLock: ImageLock | null = null;

  constructor(
    readonly filename: string,
    private readonly fh: FileHandle,
    private readonly pool: IoPool,
    readonly readOnly: boolean,
    public size: number,
  ) {}

  static async open(filename: string, fh: FileHandle, pool: IoPool, readOnly: boolean): Promise<RawDriver> {
    const st = await fh.stat();
    return new RawDriver(filename, fh, pool, readOnly, st.size);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    return this.pool.pread(this.fh.fd, offset, length);
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this, offset, data.length);
    if (this.readOnly) return Promise.reject(new Error("Block node is read-only"));
    return this.pool.pwrite(this.fh.fd, offset, data);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    checkRange(this, offset, length);
    if (this.readOnly) throw new Error("Block node is read-only");
    const zero = new Uint8Array(Math.min(length, ZERO_CHUNK));
    for (let o = 0; o < length; o += zero.length) await this.pool.pwrite(this.fh.fd, offset + o, zero.subarray(0, Math.min(zero.length, length - o)));
  }

  discard(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  flush(): Promise<void> {
    return this.readOnly ? Promise.resolve() : this.pool.fdatasync(this.fh.fd);
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    const max = Math.min(length, this.size - offset);
    // Holes read as zeros and hold no data (file-posix: SEEK_DATA/SEEK_HOLE); where the system
    // cannot tell, everything is data, as in QEMU.
    const a = await findAllocation(this.fh.fd, offset, max, this.size);
    const data = a === null || a.data;
    return { start: offset, length: a === null ? max : a.length, depth: 0, present: true, zero: !data, data, compressed: false, offset };
  }

  async actualSize(): Promise<number> {
    return (await this.fh.stat()).blocks * 512;
  }

  dirty(): boolean {
    return false;
  }
  formatSpecific(): undefined {
    return undefined;
  }

  async truncate(size: number): Promise<void> {
    await this.fh.truncate(size);
    this.size = size;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
