// The SiFive CLINT at 0x2000000 (QEMU hw/intc/riscv_aclint.c with aclint=off): msip at +0
// (MSWI), mtimecmp at +0x4000 and mtime at +0xBFF8 (MTIMER), one hart. mtime counts at
// 10 MHz from the host clock; MTIP is the level mtime >= mtimecmp, re-evaluated on every
// write and by `update()`, which the board calls between instruction batches.

import type { MmioDevice } from "./device.js";

export const CLINT_BASE = 0x2000000;
export const CLINT_SIZE = 0x10000;
export const CLINT_TIMEBASE_FREQ = 10_000_000;
const NS_PER_TICK = 1e9 / CLINT_TIMEBASE_FREQ;

const MSIP = 0x0;
const MTIMECMP = 0x4000;
const MTIME = 0xbff8;
const TWO32 = 4294967296;

export interface ClintLines {
  setMsip(level: boolean): void;
  setMtip(level: boolean): void;
}

export interface ClintState {
  version: 1;
  msip: number;
  mtimecmpLo: number;
  mtimecmpHi: number;
  mtime: number;
}

export class Clint implements MmioDevice {
  readonly name = "riscv.aclint.swi+mtimer";
  private msip = 0;
  private cmpLo = 0;
  private cmpHi = 0;
  /** mtime = floor(now() / 100 ns) + delta. */
  private delta = 0;
  /** Host ns at which mtime reaches mtimecmp (Infinity: never). */
  private deadlineNs = Infinity;
  private mtip = false;

  constructor(
    private readonly lines: ClintLines,
    private readonly now: () => number,
  ) {
    this.reset();
  }

  /**
   * Device reset (QEMU riscv_aclint_*_reset_enter): mtime and msip go to 0. mtimecmp is left
   * as it was ("unknown" per the ACLINT spec); it is 0 only at power-on.
   */
  reset(): void {
    this.msip = 0;
    this.delta = -Math.floor(this.now() / NS_PER_TICK);
    this.lines.setMsip(false);
    // Drive MTIP afresh: the hart's reset cleared its copy of the line.
    this.mtip = false;
    this.lines.setMtip(false);
    this.recompute();
  }

  mtime(): number {
    return Math.floor(this.now() / NS_PER_TICK) + this.delta;
  }

  mtimecmp(): number {
    return this.cmpHi * TWO32 + this.cmpLo;
  }

  /** Re-evaluate MTIP against the clock; cheap when no deadline is near. */
  update(nowNs: number): void {
    if (!this.mtip && nowNs >= this.deadlineNs) this.recompute();
  }

  /** Host ns (the `now` clock) when MTIP will next rise, or null if it is up or never will. */
  nextDeadlineNs(): number | null {
    return this.mtip || this.deadlineNs === Infinity ? null : this.deadlineNs;
  }

  private recompute(): void {
    const cmp = this.mtimecmp();
    const t = this.mtime();
    const level = t >= cmp;
    this.deadlineNs = level || cmp >= 2 ** 53 ? Infinity : (cmp - this.delta) * NS_PER_TICK;
    if (level !== this.mtip) {
      this.mtip = level;
      this.lines.setMtip(level);
    }
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0;
    if (offset === MSIP) return this.msip;
    if (offset === MTIMECMP) return this.cmpLo;
    if (offset === MTIMECMP + 4) return this.cmpHi;
    if (offset === MTIME) return this.mtime() % TWO32;
    if (offset === MTIME + 4) return Math.floor(this.mtime() / TWO32);
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    value >>>= 0;
    if (offset === MSIP) {
      this.msip = value & 1;
      this.lines.setMsip(this.msip !== 0);
    } else if (offset === MTIMECMP) {
      this.cmpLo = value;
      this.recompute();
    } else if (offset === MTIMECMP + 4) {
      this.cmpHi = value;
      this.recompute();
    } else if (offset === MTIME || offset === MTIME + 4) {
      const cur = this.mtime();
      const lo = offset === MTIME ? value : cur % TWO32;
      const hi = offset === MTIME ? Math.floor(cur / TWO32) : value;
      this.delta += hi * TWO32 + lo - cur;
      this.recompute();
    }
  }

  /** Device-level access sizes, as QEMU's ops declare them (4 or 8 bytes; 8 never on rv32). */
  static validSize(size: number): boolean {
    return size === 4;
  }

  save(): ClintState {
    return { version: 1, msip: this.msip, mtimecmpLo: this.cmpLo, mtimecmpHi: this.cmpHi, mtime: this.mtime() };
  }

  load(s: ClintState): void {
    this.msip = s.msip;
    this.cmpLo = s.mtimecmpLo;
    this.cmpHi = s.mtimecmpHi;
    this.delta = s.mtime - Math.floor(this.now() / NS_PER_TICK);
    this.lines.setMsip(this.msip !== 0);
    this.recompute();
  }
}
