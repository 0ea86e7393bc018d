// The SiFive PLIC (QEMU hw/intc/sifive_plic.c, virt's "MS" hart config):
// 96 sources (0 reserved), priorities 0..7, per-context enable bits and threshold,
// claim/complete. Context 0 drives the hart's MEIP, context 1 its SEIP. Sources are
// level-triggered: pending follows the line, and a completed source whose line is still
// high becomes pending again.

import type { IrqLine, Migratable, MmioDevice } from "./device.js";
import type { VMStateDescription } from "../src/migration/vmstate.js";

export const PLIC_NUM_SOURCES = 96;
const WORDS = PLIC_NUM_SOURCES / 32;
const CONTEXTS = 2;
const PRIORITY_MASK = 7;
const PENDING_BASE = 0x1000;
const ENABLE_BASE = 0x2000;
const ENABLE_STRIDE = 0x80;
const CONTEXT_BASE = 0x200000;
const CONTEXT_STRIDE = 0x1000;

/** The PLIC's migratable state; field names follow QEMU's SiFivePLICState. */
export interface PlicState {
  source_priority: Uint32Array;
  /** Per-context threshold. */
  target_priority: Uint32Array;
  pending: Uint32Array;
  claimed: Uint32Array;
  /** CONTEXTS x WORDS enable bits. */
  enable: Uint32Array;
  /** The input lines' levels (QEMU re-derives these from its devices; minivm keeps them). */
  level: Uint32Array;
}

/** QEMU's vmstate_sifive_plic (hw/intc/sifive_plic.c), plus the line levels. */
export const PLIC_VMSD: VMStateDescription<PlicState> = {
  name: "riscv_sifive_plic",
  version_id: 1,
  minimum_version_id: 1,
  fields: [
    { name: "source_priority", type: "uint32", array: PLIC_NUM_SOURCES, range: [0, PRIORITY_MASK] },
    { name: "target_priority", type: "uint32", array: CONTEXTS, range: [0, PRIORITY_MASK] },
    { name: "pending", type: "uint32", array: WORDS },
    { name: "claimed", type: "uint32", array: WORDS },
    { name: "enable", type: "uint32", array: WORDS * CONTEXTS },
    { name: "level", type: "uint32", array: WORDS },
  ],
};

function plicPowerOn(): PlicState {
  return {
    source_priority: new Uint32Array(PLIC_NUM_SOURCES),
    target_priority: new Uint32Array(CONTEXTS),
    pending: new Uint32Array(WORDS),
    claimed: new Uint32Array(WORDS),
    enable: new Uint32Array(WORDS * CONTEXTS),
    level: new Uint32Array(WORDS),
  };
}

export class Plic implements MmioDevice, Migratable<PlicState> {
  readonly name = "riscv.sifive.plic";
  readonly vmsd = PLIC_VMSD;
  private s = plicPowerOn();

  /** `contextLine(ctx, level)` drives MEIP (ctx 0) or SEIP (ctx 1). */
  constructor(private readonly contextLine: (ctx: number, level: boolean) => void) {}

  reset(): void {
    this.s.source_priority.fill(0);
    this.s.pending.fill(0);
    this.s.claimed.fill(0);
    this.s.enable.fill(0);
    this.s.target_priority.fill(0);
    // Line levels belong to the devices and survive; re-derive pending from them.
    this.s.pending.set(this.s.level);
    this.update();
  }

  /** The interrupt line for source `irq`, to hand to a device. */
  line(irq: number): IrqLine {
    if (irq <= 0 || irq >= PLIC_NUM_SOURCES) throw new Error(`PLIC source ${irq} out of range 1..${PLIC_NUM_SOURCES - 1}`);
    return { set: (lvl: boolean) => this.setLevel(irq, lvl) };
  }

  setLevel(irq: number, lvl: boolean): void {
    const w = irq >>> 5;
    const bit = 1 << (irq & 31);
    if (lvl) {
      this.s.level[w] |= bit;
      this.s.pending[w] |= bit;
    } else {
      this.s.level[w] &= ~bit;
      this.s.pending[w] &= ~bit;
    }
    this.update();
  }

  /** Best source for a context: pending, enabled, unclaimed, priority above threshold; ties go to the lowest id. */
  private best(ctx: number): number {
    let maxIrq = 0;
    let maxPrio = this.s.target_priority[ctx];
    for (let i = 0; i < WORDS; i++) {
      const cand = this.s.pending[i] & ~this.s.claimed[i] & this.s.enable[ctx * WORDS + i];
      if (cand === 0) continue;
      for (let j = 0; j < 32; j++) {
        if (((cand >>> j) & 1) === 0) continue;
        const irq = i * 32 + j;
        if (this.s.source_priority[irq] > maxPrio) {
          maxIrq = irq;
          maxPrio = this.s.source_priority[irq];
        }
      }
    }
    return maxIrq;
  }

  private update(): void {
    for (let ctx = 0; ctx < CONTEXTS; ctx++) this.contextLine(ctx, this.best(ctx) !== 0);
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0;
    if (offset < PENDING_BASE) {
      const irq = offset >>> 2;
      return irq < PLIC_NUM_SOURCES ? this.s.source_priority[irq] : 0;
    }
    if (offset < ENABLE_BASE) {
      const w = (offset - PENDING_BASE) >>> 2;
      return w < WORDS ? this.s.pending[w] : 0;
    }
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const w = ((offset - ENABLE_BASE) & (ENABLE_STRIDE - 1)) >>> 2;
      return ctx < CONTEXTS && w < WORDS ? this.s.enable[ctx * WORDS + w] : 0;
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    if (ctx >= CONTEXTS) return 0;
    const reg = (offset - CONTEXT_BASE) & (CONTEXT_STRIDE - 1);
    if (reg === 0) return this.s.target_priority[ctx];
    if (reg === 4) return this.claim(ctx);
    return 0;
  }

  /** plic_claim: take the best source, clear its pending bit and mark it claimed. */
  private claim(ctx: number): number {
    const irq = this.best(ctx);
    if (irq !== 0) {
      this.s.pending[irq >>> 5] &= ~(1 << (irq & 31));
      this.s.claimed[irq >>> 5] |= 1 << (irq & 31);
    }
    this.update();
    return irq;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    value >>>= 0;
    if (offset < PENDING_BASE) {
      const irq = offset >>> 2;
      if (irq < PLIC_NUM_SOURCES) this.s.source_priority[irq] = value & PRIORITY_MASK;
      this.update();
      return;
    }
    if (offset < ENABLE_BASE) return; // pending is read-only
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const w = ((offset - ENABLE_BASE) & (ENABLE_STRIDE - 1)) >>> 2;
      if (ctx < CONTEXTS && w < WORDS) this.s.enable[ctx * WORDS + w] = value;
      this.update();
      return;
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    if (ctx >= CONTEXTS) return;
    const reg = (offset - CONTEXT_BASE) & (CONTEXT_STRIDE - 1);
    if (reg === 0) {
      this.s.target_priority[ctx] = value & PRIORITY_MASK;
      this.update();
    } else if (reg === 4 && value < PLIC_NUM_SOURCES) {
      // Complete. QEMU does not check that the source is enabled for this context.
      const w = value >>> 5;
      const bit = 1 << (value & 31);
      this.s.claimed[w] &= ~bit;
      if (this.s.level[w] & bit) this.s.pending[w] |= bit;
      this.update();
    }
  }

  saveState(): PlicState {
    return this.s;
  }

  /** Take the loaded registers and re-drive both context lines from them. */
  adoptState(s: PlicState): void {
    this.s = s;
    this.update();
  }
}
