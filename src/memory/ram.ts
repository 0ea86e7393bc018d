// Guest RAM: one SharedArrayBuffer at the board's DRAM base (src/core/board.ts),
// readable and writable from any thread that holds the buffer (src/core/regions.ts hands it
// to every worker). Writes by devices (DMA, ring updates) go through the RAM's WriteTracker,
// the same write-tracking path the interpreter uses, so migration and a code cache see them.

import type { GuestRam } from "../../devices/device.js";
import { PAGE_SHIFT, WriteTracker, pageBitmapBytes } from "./write-tracking.js";
import type { PresentGate } from "./present-gate.js";

export { PAGE_SHIFT };

/** Bytes needed for the dirty bitmap of `ramSize` bytes (whole Int32 words). */
export const dirtyBitmapBytes = pageBitmapBytes;

/** A RAM size the riscv32 virt board can map, or an Error saying why not. */
export function checkRamSize(size: number): void {
  if (!Number.isInteger(size) || size <= 0 || size % 4096 !== 0) throw new Error(`RAM size ${size} must be a positive multiple of 4096 bytes`);
  if (size > 0x80000000) throw new Error(`RAM size ${size} exceeds 2 GiB, the most a riscv32 virt board can map`);
}

export class Ram implements GuestRam {
  readonly base: number;
  readonly size: number;
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly dirtyBuffer: SharedArrayBuffer;
  /** Bit p of word p>>5 is page p (offset p*4096 from `base`). */
  readonly dirty: Int32Array;
  /** The one write-tracking path: dirty bits plus this thread's watched pages. */
  readonly tracking: WriteTracker;
  /** Postcopy's page-present gate: device accesses wait for missing pages too (DMA faults). */
  gate: PresentGate | null = null;

  constructor(base: number, size: number, buffer?: SharedArrayBuffer, dirtyBuffer?: SharedArrayBuffer) {
    checkRamSize(size);
    this.base = base;
    this.size = size;
    this.buffer = buffer ?? new SharedArrayBuffer(size);
    if (this.buffer.byteLength < size) throw new Error(`RAM buffer holds ${this.buffer.byteLength} bytes, expected at least ${size}`);
    const need = dirtyBitmapBytes(size);
    this.dirtyBuffer = dirtyBuffer ?? new SharedArrayBuffer(need);
    if (this.dirtyBuffer.byteLength < need) throw new Error(`dirty bitmap holds ${this.dirtyBuffer.byteLength} bytes, expected at least ${need}`);
    this.bytes = new Uint8Array(this.buffer, 0, size);
    this.view = new DataView(this.buffer, 0, size);
    this.dirty = new Int32Array(this.dirtyBuffer, 0, need / 4);
    this.tracking = new WriteTracker(this.dirty, size);
  }

  contains(addr: number, len: number): boolean {
    const off = addr - this.base;
    return off >= 0 && len >= 0 && off + len <= this.size;
  }

  /** Mark [off, off+len) (RAM offsets) written: dirty bits and watched-page listener. */
  markDirty(off: number, len: number): void {
    this.tracking.written(off, len);
  }

  isDirty(page: number): boolean {
    return (Atomics.load(this.dirty, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  dmaRead(addr: number, dst: Uint8Array): boolean {
    if (!this.contains(addr, dst.length)) return false;
    const off = addr - this.base;
    this.await(off, dst.length);
    dst.set(this.bytes.subarray(off, off + dst.length));
    return true;
  }

  dmaWrite(addr: number, src: Uint8Array): boolean {
    if (!this.contains(addr, src.length)) return false;
    const off = addr - this.base;
    this.await(off, src.length);
    this.bytes.set(src, off);
    this.tracking.written(off, src.length);
    return true;
  }

  /** Postcopy: wait for [off, off+len)'s pages (a no-op unless this is a postcopy destination). */
  private await(off: number, len: number): void {
    const g = this.gate;
    if (g !== null && g.active) g.ensureRange(off, len);
  }

  load16(addr: number): number {
    this.await(addr - this.base, 2);
    return this.view.getUint16(addr - this.base, true);
  }

  load32(addr: number): number {
    this.await(addr - this.base, 4);
    return this.view.getUint32(addr - this.base, true);
  }

  store16(addr: number, value: number): void {
    const off = addr - this.base;
    this.await(off, 2);
    this.view.setUint16(off, value, true);
    this.tracking.written(off, 2);
  }

  store32(addr: number, value: number): void {
    const off = addr - this.base;
    this.await(off, 4);
    this.view.setUint32(off, value >>> 0, true);
    this.tracking.written(off, 4);
  }
}
