// The SiFive CLINT (QEMU hw/intc/riscv_aclint.c with aclint=off): msip at +0
// (MSWI), mtimecmp at +0x4000 and mtime at +0xBFF8 (MTIMER), one hart. mtime counts at
// 10 MHz from the host clock; MTIP is the level mtime >= mtimecmp, re-evaluated on every
// write and by `update()`, which the board calls between instruction batches.

import type { Migratable, MmioDevice } from "./device.js";
import type { VMStateDescription } from "../src/migration/vmstate.js";

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

/** The CLINT's migratable state (one hart). */
export interface ClintState {
  /** MSWI msip bit for hart 0. */
  msip: number;
  /** MTIMER mtimecmp, all 64 bits. */
  mtimecmp: bigint;
  /**
   * mtime when the state was taken (filled in by saveState). The counter itself is not state:
   * it runs from the destination's clock, offset so that it continues from this value.
   */
  mtime: bigint;
}

/**
 * QEMU's riscv_mtimer description keeps mtimecmp (and, later, the time delta); minivm saves
 * mtime itself, and the MSWI bit in a subsection sent only while it is set.
 */
export const CLINT_VMSD: VMStateDescription<ClintState> = {
  name: "riscv_mtimer",
  version_id: 1,
  minimum_version_id: 1,
  fields: [
    { name: "mtime", type: "uint64" },
    { name: "mtimecmp", type: "uint64" },
  ],
  // Without the subsection, msip was 0 (QEMU devices set such defaults in pre_load).
  pre_load: (s) => {
    s.msip = 0;
  },
  subsections: [
    {
      name: "riscv_mtimer/msip",
      version_id: 1,
      minimum_version_id: 1,
      needed: (s) => s.msip !== 0,
      fields: [{ name: "msip", type: "uint32", range: [0, 1] }],
    },
  ],
};

const MASK32 = 0xffffffffn;

export class Clint implements MmioDevice, Migratable<ClintState> {
  readonly name = "riscv.aclint.swi+mtimer";
  readonly vmsd = CLINT_VMSD;
  private s: ClintState = { msip: 0, mtimecmp: 0n, mtime: 0n };
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
    this.s.msip = 0;
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

  /** mtimecmp as a number (exact below 2^53, which is all a deadline needs). */
  mtimecmp(): number {
    return Number(this.s.mtimecmp);
  }

  /** Re-evaluate MTIP against the clock; cheap when no deadline is near. */
  update(nowNs: number): void {
    if (!this.mtip && nowNs >= this.deadlineNs) this.recompute();
  }

  /** Host ns (the `now` clock) when MTIP will next rise, or null if it is up or never will. */
  nextDeadlineNs(): number | null {
    return this.mtip || this.deadlineNs === Infinity ? null : this.deadlineNs;
  }

  /** Re-evaluate MTIP and its deadline; `force` drives the line even when it did not change. */
  private recompute(force = false): void {
    const cmp = this.mtimecmp();
    const t = this.mtime();
    const level = t >= cmp;
    this.deadlineNs = level || cmp >= 2 ** 53 ? Infinity : (cmp - this.delta) * NS_PER_TICK;
    if (level !== this.mtip || force) {
      this.mtip = level;
      this.lines.setMtip(level);
    }
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0;
    if (offset === MSIP) return this.s.msip;
    if (offset === MTIMECMP) return Number(this.s.mtimecmp & MASK32);
    if (offset === MTIMECMP + 4) return Number(this.s.mtimecmp >> 32n);
    if (offset === MTIME) return this.mtime() % TWO32;
    if (offset === MTIME + 4) return Math.floor(this.mtime() / TWO32);
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    value >>>= 0;
    if (offset === MSIP) {
      this.s.msip = value & 1;
      this.lines.setMsip(this.s.msip !== 0);
    } else if (offset === MTIMECMP) {
      this.s.mtimecmp = (this.s.mtimecmp & ~MASK32) | BigInt(value);
      this.recompute();
    } else if (offset === MTIMECMP + 4) {
      this.s.mtimecmp = (BigInt(value) << 32n) | (this.s.mtimecmp & MASK32);
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

  saveState(): ClintState {
    this.s.mtime = BigInt.asUintN(64, BigInt(Math.trunc(this.mtime())));
    return this.s;
  }

  /** Continue mtime from the saved value on this machine's clock; re-drive MSIP and MTIP. */
  adoptState(s: ClintState): void {
    this.s = s;
    this.delta = Number(s.mtime) - Math.floor(this.now() / NS_PER_TICK);
    this.lines.setMsip(s.msip !== 0);
    this.recompute(true);
  }
}
