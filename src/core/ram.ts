// Guest RAM: one SharedArrayBuffer at guest-physical 0x8000_0000 (QEMU virt's DRAM base),
// plus the dirty-page bitmap (1 bit per 4 KiB page) that the interpreter sets on every store
// and DMA sets here, so that migration can find what changed. Other threads read and clear
// the bitmap with Atomics on its Int32Array view.

import type { GuestRam } from "../../devices/device.js";

export const RAM_BASE = 0x80000000;
export const PAGE_SHIFT = 12;

/** Bytes needed for the dirty bitmap of `ramSize` bytes (whole Int32 words). */
export function dirtyBitmapBytes(ramSize: number): number {
  const pages = Math.ceil(ramSize / 4096);
  return Math.ceil(pages / 32) * 4;
}

export class Ram implements GuestRam {
  readonly base = RAM_BASE;
  readonly size: number;
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly dirtyBuffer: SharedArrayBuffer;
  /** Bit p of word p>>5 is page p (offset p*4096 from RAM_BASE). */
  readonly dirty: Int32Array;

  constructor(size: number, buffer?: SharedArrayBuffer, dirtyBuffer?: SharedArrayBuffer) {
    if (size <= 0 || size % 4096 !== 0) throw new Error(`RAM size ${size} must be a positive multiple of 4096 bytes`);
    if (size > 0x80000000) throw new Error(`RAM size ${size} exceeds 2 GiB, the most a riscv32 virt board can map`);
    this.size = size;
    this.buffer = buffer ?? new SharedArrayBuffer(size);
    if (this.buffer.byteLength < size) throw new Error(`RAM buffer holds ${this.buffer.byteLength} bytes, expected at least ${size}`);
    const need = dirtyBitmapBytes(size);
    this.dirtyBuffer = dirtyBuffer ?? new SharedArrayBuffer(need);
    if (this.dirtyBuffer.byteLength < need) throw new Error(`dirty bitmap holds ${this.dirtyBuffer.byteLength} bytes, expected at least ${need}`);
    this.bytes = new Uint8Array(this.buffer, 0, size);
    this.view = new DataView(this.buffer, 0, size);
    this.dirty = new Int32Array(this.dirtyBuffer, 0, need / 4);
  }

  contains(addr: number, len: number): boolean {
    const off = addr - RAM_BASE;
    return off >= 0 && len >= 0 && off + len <= this.size;
  }

  /** Mark [off, off+len) (RAM offsets) dirty. */
  markDirty(off: number, len: number): void {
    if (len <= 0) return;
    const first = off >>> PAGE_SHIFT;
    const last = (off + len - 1) >>> PAGE_SHIFT;
    for (let p = first; p <= last; p++) {
      const bit = 1 << (p & 31);
      if ((this.dirty[p >>> 5] & bit) === 0) Atomics.or(this.dirty, p >>> 5, bit);
    }
  }

  isDirty(page: number): boolean {
    return (Atomics.load(this.dirty, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  dmaRead(addr: number, dst: Uint8Array): boolean {
    if (!this.contains(addr, dst.length)) return false;
    const off = addr - RAM_BASE;
    dst.set(this.bytes.subarray(off, off + dst.length));
    return true;
  }

  dmaWrite(addr: number, src: Uint8Array): boolean {
    if (!this.contains(addr, src.length)) return false;
    const off = addr - RAM_BASE;
    this.bytes.set(src, off);
    this.markDirty(off, src.length);
    return true;
  }

  load16(addr: number): number {
    return this.view.getUint16(addr - RAM_BASE, true);
  }

  load32(addr: number): number {
    return this.view.getUint32(addr - RAM_BASE, true);
  }

  store16(addr: number, value: number): void {
    const off = addr - RAM_BASE;
    this.view.setUint16(off, value, true);
    this.markDirty(off, 2);
  }

  store32(addr: number, value: number): void {
    const off = addr - RAM_BASE;
    this.view.setUint32(off, value >>> 0, true);
    this.markDirty(off, 4);
  }
}
