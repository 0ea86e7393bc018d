// The narrow interfaces every device model implements or is given (Firecracker style):
// MMIO access from the bus, an interrupt line into the PLIC, DMA into guest RAM, and
// a VMState description of the device's plain state object for migration.

import type { VMStateDescription } from "../src/migration/vmstate.js";

/** A memory-mapped device: offsets are relative to the device's base address. */
export interface MmioDevice {
  readonly name: string;
  /** Read `size` bytes (1, 2 or 4) at `offset`; the value is an unsigned 32-bit number. */
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** One interrupt source wired to the PLIC (level-triggered, as virt's devices are). */
export interface IrqLine {
  set(level: boolean): void;
}

/** What a DMA-capable device sees of guest RAM. Addresses are guest-physical. */
export interface GuestRam {
  readonly base: number;
  readonly size: number;
  /** True when [addr, addr+len) lies entirely inside RAM. */
  contains(addr: number, len: number): boolean;
  /** Copy guest memory into `dst`; false (and nothing copied) if the range leaves RAM. */
  dmaRead(addr: number, dst: Uint8Array): boolean;
  /** Copy `src` into guest memory and mark the pages dirty; false if the range leaves RAM. */
  dmaWrite(addr: number, src: Uint8Array): boolean;
  /** Little-endian loads/stores for ring processing; the caller checks `contains` first. */
  load16(addr: number): number;
  load32(addr: number): number;
  store16(addr: number, value: number): void;
  store32(addr: number, value: number): void;
}

/**
 * Migration (DESIGN.md §6): a device keeps its migratable state in one plain object that its
 * VMState description walks. Saving writes that object; loading decodes a *new* one
 * (src/migration/vmstate.ts loadState), and the device adopts it only once every section of
 * the machine decoded and passed its checks, so a failed load changes nothing.
 */
export interface Migratable<S extends object> {
  readonly vmsd: VMStateDescription<S>;
  /** The live state the description walks when saving (snapshot values such as mtime filled in). */
  saveState(): S;
  /**
   * Checks that need the device (RAM bounds, queue counts) on a decoded state, before any
   * device adopts anything; a string refuses the load with that reason.
   */
  checkState?(s: S): string | null;
  /** Adopt a state that loadState() decoded and checkState() accepted: re-drive lines, recompute deadlines. */
  adoptState(s: S): void;
}
