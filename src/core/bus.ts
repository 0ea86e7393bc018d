// The physical address map outside RAM (DESIGN.md §3, QEMU virt's memmap): which device
// answers at which address, and with which access sizes. An address no device claims is a
// hole; the access raises an access fault, as QEMU's unassigned memory does on RISC-V.
// RAM itself never reaches the bus: the interpreter reads it directly.

import type { MmioDevice } from "../../devices/device.js";
import type { CpuBus } from "../cpu/cpu.js";

export interface BusRegion {
  readonly base: number;
  readonly size: number;
  readonly device: MmioDevice;
  /** Bit n set = an access of n bytes is valid (QEMU's MemoryRegionOps.valid). */
  readonly sizes: number;
  /** ROM is read as memory; I/O regions are fetched from as QEMU's translator does. */
  readonly executable: boolean;
}

export const SIZES_ANY = (1 << 1) | (1 << 2) | (1 << 4);
export const SIZES_32 = 1 << 4;
export const SIZES_16_32 = (1 << 2) | (1 << 4);

export class Bus implements CpuBus {
  fault = false;
  private regions: BusRegion[] = [];
  private last: BusRegion | null = null;

  constructor(
    private readonly mtimeSource: () => number,
    private readonly htifHook: (pa: number) => void,
  ) {}

  map(base: number, size: number, device: MmioDevice, sizes = SIZES_ANY, executable = false): void {
    for (const r of this.regions) {
      if (base < r.base + r.size && r.base < base + size) {
        throw new Error(`${device.name} at 0x${base.toString(16)} overlaps ${r.device.name} at 0x${r.base.toString(16)}`);
      }
    }
    this.regions.push({ base, size, device, sizes, executable });
    this.regions.sort((a, b) => a.base - b.base);
  }

  /** The device mapped at `pa`, or null. */
  find(pa: number): BusRegion | null {
    const l = this.last;
    if (l !== null && pa >= l.base && pa - l.base < l.size) return l;
    for (const r of this.regions) {
      if (pa >= r.base && pa - r.base < r.size) {
        this.last = r;
        return r;
      }
    }
    return null;
  }

  get mapped(): readonly BusRegion[] {
    return this.regions;
  }

  load(pa: number, size: 1 | 2 | 4): number {
    const r = this.find(pa);
    if (r === null || (r.sizes & (1 << size)) === 0 || pa - r.base + size > r.size) {
      this.fault = true;
      return 0;
    }
    return r.device.read(pa - r.base, size) >>> 0;
  }

  store(pa: number, size: 1 | 2 | 4, value: number): void {
    const r = this.find(pa);
    if (r === null || (r.sizes & (1 << size)) === 0 || pa - r.base + size > r.size) {
      this.fault = true;
      return;
    }
    r.device.write(pa - r.base, size, value >>> 0);
  }

  /**
   * Instruction fetch from outside RAM. ROM reads as memory. From an I/O device QEMU's
   * translator reads 16 bits at a time: a device that refuses 2-byte accesses (PLIC, CLINT,
   * RTC) gives an access fault, one that answers (finisher, UART, virtio) is executed from,
   * and a low half that is not a 32-bit encoding is returned alone (an illegal 16-bit insn).
   */
  fetch(pa: number): number {
    const r = this.find(pa);
    const off = r === null ? 0 : pa - r.base;
    if (r === null || off + 4 > r.size) {
      this.fault = true;
      return 0;
    }
    if (r.executable) return r.device.read(off, 4) >>> 0;
    if ((r.sizes & (1 << 2)) === 0) {
      this.fault = true;
      return 0;
    }
    const lo = r.device.read(off, 2) & 0xffff;
    if ((lo & 3) !== 3) return lo;
    return (lo | ((r.device.read(off + 2, 2) & 0xffff) << 16)) >>> 0;
  }

  mtime(): number {
    return this.mtimeSource();
  }

  htifStore(pa: number): void {
    this.htifHook(pa);
  }
}
