// A GuestRam over an ArrayBuffer for device tests: records DMA-dirtied pages so tests can
// check that device writes mark them, and refuses anything outside [base, base+size).
import type { GuestRam, IrqLine } from "../../devices/device.js";

export class TestRam implements GuestRam {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly dirtyPages = new Set<number>();

  constructor(
    readonly base: number,
    readonly size: number,
  ) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  contains(addr: number, len: number): boolean {
    return Number.isInteger(addr) && Number.isInteger(len) && addr >= this.base && len >= 0 && addr + len <= this.base + this.size;
  }
  dmaRead(addr: number, dst: Uint8Array): boolean {
    if (!this.contains(addr, dst.length)) return false;
    dst.set(this.bytes.subarray(addr - this.base, addr - this.base + dst.length));
    return true;
  }
  dmaWrite(addr: number, src: Uint8Array): boolean {
    if (!this.contains(addr, src.length)) return false;
    this.bytes.set(src, addr - this.base);
    for (let p = (addr - this.base) >> 12; p <= (addr - this.base + Math.max(src.length, 1) - 1) >> 12; p++) this.dirtyPages.add(p);
    return true;
  }
  load16(addr: number): number {
    return this.view.getUint16(addr - this.base, true);
  }
  load32(addr: number): number {
    return this.view.getUint32(addr - this.base, true);
  }
  store16(addr: number, value: number): void {
    this.view.setUint16(addr - this.base, value, true);
  }
  store32(addr: number, value: number): void {
    this.view.setUint32(addr - this.base, value >>> 0, true);
  }
}

export class TestIrq implements IrqLine {
  level = false;
  raised = 0;
  set(level: boolean): void {
    if (level && !this.level) this.raised++;
    this.level = level;
  }
}
