// The RV32IMA hart: architectural state plus the interpreter loop (unprivileged spec
// chapters 2, 7, 8; privileged spec chapter 3 for the state). The hot path lives in one
// function, `execute`, over typed arrays (CONVENTIONS.md, TinyEMU row); everything rare
// (CSRs, traps, page walks, MMIO, AMOs) lives in csr.ts, trap.ts, mmu.ts and memory.ts.

import {
  COUNTER_WRITE_CYCLE,
  COUNTER_WRITE_INSTRET,
  EXC_BREAKPOINT,
  EXC_ECALL_U,
  EXC_ILLEGAL_INST,
  EXC_INST_MISALIGNED,
  MISA_C,
  MISA_RV32IMASU,
  PRV_M,
  TLB_SIZE,
} from "./constants.js";
import { div, divu, mulh, mulhsu, mulhu, rem, remu } from "./arith.js";
import { csrInstruction } from "./csr.js";
import { amoInstruction, fetchHigh, fetchSlow, loadSlow, storeSlow } from "./memory.js";
import { expandCompressedCached } from "./rvc.js";
import { markPageDirty, WriteTracker } from "../memory/write-tracking.js";
import type { PresentGate } from "../memory/present-gate.js";
import { raiseException, systemInstruction } from "./trap.js";

/** What the hart needs from the board: the physical bus and the timer. */
export interface CpuBus {
  /** Physical read outside RAM; sets `fault` on a hole. */
  load(pa: number, size: 1 | 2 | 4): number;
  /** Instruction fetch outside RAM: only ROM answers; anything else sets `fault`. */
  fetch(pa: number): number;
  /** Physical write outside RAM; sets `fault` on a hole. */
  store(pa: number, size: 1 | 2 | 4, value: number): void;
  fault: boolean;
  /** CLINT mtime, for the `time` CSR. */
  mtime(): number;
  /** A store hit the page that holds the HTIF `tohost` word (only when an ELF defines it). */
  htifStore(pa: number): void;
}

/**
 * The hart's plain 32-bit CSR fields with their reset values (null: reset leaves the field
 * alone, as QEMU's riscv_cpu_reset leaves misa). The one list of them: Cpu.reset() and the
 * hart's VMState description (state.ts) both walk it.
 */
export const CPU_CSRS = {
  mstatus: 0,
  mstatush: 0,
  misa: null,
  medeleg: 0,
  mideleg: 0,
  mie: 0,
  mip: 0,
  mtvec: 0,
  mepc: 0,
  mcause: 0,
  mtval: 0,
  mscratch: 0,
  mcounteren: 0,
  mcountinhibit: 0,
  menvcfg: 0,
  stvec: 0,
  sepc: 0,
  scause: 0,
  stval: 0,
  sscratch: 0,
  scounteren: 0,
  senvcfg: 0,
  satp: 0,
  menvcfgh: 0,
} as const satisfies Record<string, number | null>;

export type CpuCsrName = keyof typeof CPU_CSRS;
export const CPU_CSR_NAMES = Object.keys(CPU_CSRS) as CpuCsrName[];

const TLB_MASK = TLB_SIZE - 1;

export class Cpu {
  // General registers; x[0] is rewritten to 0 before each instruction.
  readonly x = new Int32Array(32);
  pc = 0;
  priv = PRV_M;

  // Machine and supervisor CSRs (privileged spec chapters 3 and 4).
  mstatus = 0;
  mstatush = 0;
  /** mip.SEIP = seipSoftware | seipExternal (the PLIC's S-context line). */
  seipSoftware = false;
  seipExternal = false;
  misa = MISA_RV32IMASU | MISA_C;
  medeleg = 0;
  mideleg = 0;
  mie = 0;
  mip = 0;
  mtvec = 0;
  mepc = 0;
  mcause = 0;
  mtval = 0;
  mscratch = 0;
  mcounteren = 0;
  mcountinhibit = 0;
  menvcfg = 0;
  stvec = 0;
  sepc = 0;
  scause = 0;
  stval = 0;
  sscratch = 0;
  scounteren = 0;
  senvcfg = 0;
  satp = 0;
  menvcfgh = 0;
  /** mhpmcounter3..18 / mhpmevent3..18 (indexed by counter number): storage only. */
  readonly mhpmcounter = new Uint32Array(32);
  readonly mhpmcounterh = new Uint32Array(32);
  readonly mhpmevent = new Uint32Array(32);
  readonly pmpcfg = new Uint32Array(4);
  readonly pmpaddr = new Uint32Array(16);
  /** Some PMP entry is on / some entry is locked (pmp.ts keeps these in step). */
  pmpActive = false;
  pmpLocked = false;
  /**
   * The entries that are on, decoded by pmpUpdate() in priority order: physical byte range
   * [pmpStart, pmpEnd] and the cfg byte. pmpAllows() runs on every TLB fill and page-table
   * read of S/U code, and decoding NAPOT/TOR there was a tenth of Linux's boot.
   */
  pmpCount = 0;
  readonly pmpStart = new Float64Array(16);
  readonly pmpEnd = new Float64Array(16);
  readonly pmpCfgOn = new Uint8Array(16);
  /** Instructions retired (a double: exact up to 2^53). */
  instret = 0;
  /** mcycle - instret, so that writes to mcycle stick. */
  cycleOffset = 0;
  /** Set by csr.ts while a CSR instruction writes minstret[h] / mcycle[h] (COUNTER_WRITE_*). */
  counterWrite = 0;

  /**
   * LR/SC reservation: the virtual address reserved by LR.W, or -1 (kept in this hart's
   * shared word, so that another thread can see it), and the value LR saw.
   */
  get loadRes(): number {
    return Atomics.load(this.reservation, 0);
  }
  set loadRes(va: number) {
    Atomics.store(this.reservation, 0, va);
  }
  loadVal = 0;
  /** QEMU's env->badaddr: the address of the last memory exception. */
  badaddr = 0;
  /** Set by WFI; the board clears it when an interrupt is pending (mip & mie). */
  wfi = false;

  // RAM, shared with DMA and other threads.
  readonly ram8: Uint8Array;
  readonly ram16: Uint16Array;
  readonly ram32: Int32Array;
  readonly ramBase: number;
  readonly ramSize: number;
  /** One bit per 4 KiB RAM page, set on every store (migration). */
  readonly dirty: Int32Array;
  /** RAM's write tracking: the slow paths report every RAM write here. */
  readonly tracking: WriteTracker;
  /** Bit p set = page p is watched; such pages never enter the write TLB. */
  readonly watched: Int32Array;
  /** This hart's LR/SC reservation word (the per-hart block of the shared regions). */
  private readonly reservation: Int32Array;
  /** RAM page index (offset >>> 12) that holds HTIF tohost, or -1. Never cached in the write TLB. */
  htifPage = -1;
  /**
   * Postcopy's page-present gate (src/memory/present-gate.ts): every RAM access that misses
   * the TLBs asks it first while it is active. Null on a machine that is no destination.
   */
  gate: PresentGate | null = null;

  // Soft TLBs: tag = vpn | (privilege << 20), value = RAM offset of the page. Only RAM pages
  // are cached, so a hit is always a plain typed-array access. Write entries exist only for
  // pages whose PTE already has D set (QEMU grants PAGE_WRITE on the same condition).
  readonly tlbRTag = new Int32Array(TLB_SIZE).fill(-1);
  readonly tlbROff = new Int32Array(TLB_SIZE);
  readonly tlbWTag = new Int32Array(TLB_SIZE).fill(-1);
  readonly tlbWOff = new Int32Array(TLB_SIZE);
  readonly tlbXTag = new Int32Array(TLB_SIZE).fill(-1);
  readonly tlbXOff = new Int32Array(TLB_SIZE);

  /** Instruction fetched by the slow path from a non-RAM page (the boot ROM). */
  fetched = 0;
  /** Set by memory.ts when an access reached a device, so the loop returns to the board. */
  mmioTouched = false;
  /** The last execute() stopped before its budget (trap, SYSTEM instruction, MMIO): for src/cpu/jit/. */
  stoppedEarly = false;

  constructor(
    ram: SharedArrayBuffer,
    ramBase: number,
    ramSize: number,
    dirty: Int32Array,
    readonly bus: CpuBus,
    tracking?: WriteTracker,
    reservation?: Int32Array,
  ) {
    this.ram8 = new Uint8Array(ram, 0, ramSize);
    this.ram16 = new Uint16Array(ram, 0, ramSize >>> 1);
    this.ram32 = new Int32Array(ram, 0, ramSize >>> 2);
    this.ramBase = ramBase;
    this.ramSize = ramSize;
    this.dirty = dirty;
    this.tracking = tracking ?? new WriteTracker(dirty, ramSize);
    if (this.tracking.dirty !== dirty) throw new Error("Cpu: the write tracker must own the dirty bitmap the CPU marks");
    this.watched = this.tracking.watched;
    this.reservation = reservation ?? new Int32Array(new SharedArrayBuffer(4));
    this.loadRes = -1;
    // A page that becomes watched must leave the write TLB, so its stores take the slow path.
    this.tracking.onWatch((page) => this.dropWritePage(page));
  }

  /** Forget write-TLB entries that map RAM page `page`. */
  private dropWritePage(page: number): void {
    const off = page << 12;
    for (let i = 0; i < TLB_SIZE; i++) if (this.tlbWOff[i] === off) this.tlbWTag[i] = -1;
  }

  /** Power-on state (QEMU riscv_cpu_reset): M-mode at the reset vector, MIE/MPRV clear. */
  reset(resetVector: number): void {
    this.x.fill(0);
    this.pc = resetVector;
    this.priv = PRV_M;
    for (const name of CPU_CSR_NAMES) {
      const v = CPU_CSRS[name];
      if (v !== null) this[name] = v;
    }
    this.seipSoftware = false;
    this.seipExternal = false;
    this.mhpmcounter.fill(0);
    this.mhpmcounterh.fill(0);
    this.mhpmevent.fill(0);
    this.pmpcfg.fill(0);
    this.pmpaddr.fill(0);
    this.pmpActive = false;
    this.pmpLocked = false;
    this.pmpCount = 0;
    this.instret = 0;
    this.cycleOffset = 0;
    this.loadRes = -1;
    this.wfi = false;
    this.flushTlb();
  }

  flushTlb(): void {
    this.tlbRTag.fill(-1);
    this.tlbWTag.fill(-1);
    this.tlbXTag.fill(-1);
  }

  /** Privilege used for loads and stores: MPRV in M-mode borrows MPP (privileged spec 3.1.6.3). */
  dataPriv(): number {
    if (this.priv === PRV_M && (this.mstatus & (1 << 17)) !== 0) return (this.mstatus >>> 11) & 3;
    return this.priv;
  }

  /**
   * Run up to `budget` instructions. Returns early after anything that may change interrupt
   * state, privilege or translation (CSR access, trap, xRET, WFI, MMIO), so the caller can
   * look at interrupts between calls. Returns the number of instructions attempted.
   */
  execute(budget: number): number {
    const x = this.x;
    const ram8 = this.ram8;
    const ram16 = this.ram16;
    const ram32 = this.ram32;
    const dirty = this.dirty;
    const rTag = this.tlbRTag;
    const rOff = this.tlbROff;
    const wTag = this.tlbWTag;
    const wOff = this.tlbWOff;
    const xTag = this.tlbXTag;
    const xOff = this.tlbXOff;
    const dtag = this.dataPriv() << 20;
    const ftag = this.priv << 20;
    // misa.C: 16-bit instructions decode, and jump targets need only 2-byte alignment.
    const c = (this.misa & MISA_C) !== 0;
    const ialign = c ? 1 : 3;
    let pc = this.pc | 0;
    // The page being executed: pc is on it while (pc - fetchVa) >>> 0 < fetchLimit (4096
    // once a RAM page is cached, 0 before), and its words are at ram32[(pc + fetchDelta) >>> 2].
    let fetchVa = 0;
    let fetchLimit = 0;
    let fetchDelta = 0;
    let n = 0;
    let counted = 0;

    // `break run` = an early stop (trap, SYSTEM, MMIO); falling out of the loop = budget used.
    // The block compiler (src/cpu/jit/) needs to tell the two apart when it interprets cold code.
    let early = true;
    run: {
    while (n < budget) {
      n++;
      let inst: number;
      // Only an instruction at pc % 4 == 2 read from a cached RAM page lacks its upper half.
      let fromRam = true;
      if ((pc - fetchVa) >>> 0 < fetchLimit) {
        inst = (pc & 2) === 0 ? ram32[(pc + fetchDelta) >>> 2] : ram16[(pc + fetchDelta) >>> 1];
      } else {
        const fvpn = pc >>> 12;
        const fi = fvpn & TLB_MASK;
        if (xTag[fi] === (fvpn | ftag)) {
          fetchVa = pc & ~0xfff;
          fetchLimit = 4096;
          fetchDelta = (xOff[fi] - fetchVa) | 0;
          inst = (pc & 2) === 0 ? ram32[(pc + fetchDelta) >>> 2] : ram16[(pc + fetchDelta) >>> 1];
        } else {
          const r = fetchSlow(this, pc);
          if (r === 1) {
            fetchVa = pc & ~0xfff;
            fetchLimit = 4096;
            fetchDelta = (xOff[fi] - fetchVa) | 0;
            inst = (pc & 2) === 0 ? ram32[(pc + fetchDelta) >>> 2] : ram16[(pc + fetchDelta) >>> 1];
          } else if (r === 2) {
            inst = this.fetched;
            fromRam = false;
          } else {
            pc = this.pc;
            break run;
          }
        }
      }
      // Unprivileged spec 1.5: low bits 11 = a 32-bit instruction, anything else is 16-bit
      // (chapter 16, the C extension). With IALIGN=16 a 32-bit instruction may start at pc % 4
      // == 2, and at the end of a page its upper half comes from the next one.
      let ilen = 4;
      if ((inst & 3) !== 3) {
        const half = inst & 0xffff;
        const expanded = c ? expandCompressedCached(half) : 0;
        if (expanded === 0) {
          // QEMU 7.2 reports the 16 bits in mtval, with C or without.
          pc = raiseException(this, EXC_ILLEGAL_INST, half, pc);
          break run;
        }
        inst = expanded;
        ilen = 2;
      } else if ((pc & 2) !== 0 && fromRam) {
        if ((pc & 0xfff) !== 0xffe) {
          inst |= ram16[((pc + fetchDelta) >>> 1) + 1] << 16;
        } else {
          const hi = fetchHigh(this, pc);
          if (hi < 0) {
            pc = this.pc;
            break run;
          }
          inst = (inst & 0xffff) | (hi << 16);
        }
      }

      x[0] = 0;
      const rd = (inst >>> 7) & 31;
      const rs1 = (inst >>> 15) & 31;
      const f3 = (inst >>> 12) & 7;

      switch (inst & 0x7f) {
        case 0x37: // LUI
          x[rd] = inst & 0xfffff000;
          pc = (pc + ilen) | 0;
          continue;
        case 0x17: // AUIPC
          x[rd] = (pc + (inst & 0xfffff000)) | 0;
          pc = (pc + ilen) | 0;
          continue;
        case 0x6f: {
          // JAL
          const imm =
            ((inst >> 31) << 20) | (inst & 0xff000) | (((inst >>> 20) & 1) << 11) | (((inst >>> 21) & 0x3ff) << 1);
          const target = (pc + imm) | 0;
          if ((target & ialign) !== 0) {
            pc = raiseException(this, EXC_INST_MISALIGNED, target, pc);
            break run;
          }
          x[rd] = (pc + ilen) | 0;
          pc = target;
          continue;
        }
        case 0x67: {
          // JALR
          if (f3 !== 0) break;
          const target = (x[rs1] + (inst >> 20)) & ~1;
          if ((target & ialign) !== 0) {
            pc = raiseException(this, EXC_INST_MISALIGNED, target, pc);
            break run;
          }
          x[rd] = (pc + ilen) | 0;
          pc = target;
          continue;
        }
        case 0x63: {
          // BRANCH
          const a = x[rs1];
          const b = x[(inst >>> 20) & 31];
          let taken: boolean;
          switch (f3) {
            case 0: taken = a === b; break;
            case 1: taken = a !== b; break;
            case 4: taken = a < b; break;
            case 5: taken = a >= b; break;
            case 6: taken = a >>> 0 < b >>> 0; break;
            case 7: taken = a >>> 0 >= b >>> 0; break;
            default: pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc); break run;
          }
          if (taken) {
            const imm =
              ((inst >> 31) << 12) | (((inst >>> 7) & 1) << 11) | (((inst >>> 25) & 0x3f) << 5) | (((inst >>> 8) & 0xf) << 1);
            const target = (pc + imm) | 0;
            if ((target & ialign) !== 0) {
              pc = raiseException(this, EXC_INST_MISALIGNED, target, pc);
              break run;
            }
            pc = target;
          } else {
            pc = (pc + ilen) | 0;
          }
          continue;
        }
        case 0x03: {
          // LOAD
          const a = (x[rs1] + (inst >> 20)) | 0;
          const vpn = a >>> 12;
          const i = vpn & TLB_MASK;
          if (rTag[i] === (vpn | dtag)) {
            const off = rOff[i] + (a & 0xfff);
            switch (f3) {
              case 2:
                if ((a & 3) === 0) { x[rd] = ram32[off >>> 2]; pc = (pc + ilen) | 0; continue; }
                break;
              case 0: x[rd] = (ram8[off] << 24) >> 24; pc = (pc + ilen) | 0; continue;
              case 4: x[rd] = ram8[off]; pc = (pc + ilen) | 0; continue;
              case 1:
                if ((a & 1) === 0) { x[rd] = (ram16[off >>> 1] << 16) >> 16; pc = (pc + ilen) | 0; continue; }
                break;
              case 5:
                if ((a & 1) === 0) { x[rd] = ram16[off >>> 1]; pc = (pc + ilen) | 0; continue; }
                break;
              default:
                pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc);
                break run;
            }
          }
          if (f3 === 3 || f3 > 5) { pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc); break run; }
          const v = loadSlow(this, a, f3, pc);
          if (v === null) { pc = this.pc; break run; }
          x[rd] = v;
          pc = (pc + ilen) | 0;
          if (this.mmioTouched) { this.mmioTouched = false; break run; }
          continue;
        }
        case 0x23: {
          // STORE
          if (f3 > 2) { pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc); break run; }
          const a = (x[rs1] + (((inst >> 25) << 5) | ((inst >>> 7) & 31))) | 0;
          const v = x[(inst >>> 20) & 31];
          const vpn = a >>> 12;
          const i = vpn & TLB_MASK;
          if (wTag[i] === (vpn | dtag) && (a & ((1 << f3) - 1)) === 0) {
            const off = wOff[i] + (a & 0xfff);
            if (f3 === 2) ram32[off >>> 2] = v;
            else if (f3 === 0) ram8[off] = v;
            else ram16[off >>> 1] = v;
            // Watched pages never reach the write TLB, so the dirty bit is all there is to do.
            markPageDirty(dirty, off >>> 12);
            pc = (pc + ilen) | 0;
            continue;
          }
          if (!storeSlow(this, a, f3, v, pc)) { pc = this.pc; break run; }
          pc = (pc + ilen) | 0;
          if (this.mmioTouched) { this.mmioTouched = false; break run; }
          continue;
        }
        case 0x13: {
          // OP-IMM
          const a = x[rs1];
          const imm = inst >> 20;
          switch (f3) {
            case 0: x[rd] = (a + imm) | 0; break;
            case 2: x[rd] = a < imm ? 1 : 0; break;
            case 3: x[rd] = a >>> 0 < imm >>> 0 ? 1 : 0; break;
            case 4: x[rd] = a ^ imm; break;
            case 6: x[rd] = a | imm; break;
            case 7: x[rd] = a & imm; break;
            case 1:
              if ((inst >>> 25) !== 0) { pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc); break run; }
              x[rd] = a << (imm & 31);
              break;
            default: {
              const f7 = inst >>> 25;
              if (f7 === 0) x[rd] = a >>> (imm & 31);
              else if (f7 === 0x20) x[rd] = a >> (imm & 31);
              else { pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc); break run; }
            }
          }
          pc = (pc + ilen) | 0;
          continue;
        }
        case 0x33: {
          // OP
          const a = x[rs1];
          const b = x[(inst >>> 20) & 31];
          const f7 = inst >>> 25;
          if (f7 === 0) {
            switch (f3) {
              case 0: x[rd] = (a + b) | 0; break;
              case 1: x[rd] = a << (b & 31); break;
              case 2: x[rd] = a < b ? 1 : 0; break;
              case 3: x[rd] = a >>> 0 < b >>> 0 ? 1 : 0; break;
              case 4: x[rd] = a ^ b; break;
              case 5: x[rd] = a >>> (b & 31); break;
              case 6: x[rd] = a | b; break;
              default: x[rd] = a & b; break;
            }
          } else if (f7 === 0x20) {
            if (f3 === 0) x[rd] = (a - b) | 0;
            else if (f3 === 5) x[rd] = a >> (b & 31);
            else { pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc); break run; }
          } else if (f7 === 1) {
            switch (f3) {
              case 0: x[rd] = Math.imul(a, b); break;
              case 1: x[rd] = mulh(a, b); break;
              case 2: x[rd] = mulhsu(a, b); break;
              case 3: x[rd] = mulhu(a, b); break;
              case 4: x[rd] = div(a, b); break;
              case 5: x[rd] = divu(a, b); break;
              case 6: x[rd] = rem(a, b); break;
              default: x[rd] = remu(a, b); break;
            }
          } else {
            pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc);
            break run;
          }
          pc = (pc + ilen) | 0;
          continue;
        }
        case 0x0f: // MISC-MEM: FENCE is a no-op for one hart; FENCE.I has no decode cache to drop.
          if (f3 === 0 || f3 === 1) { pc = (pc + ilen) | 0; continue; }
          break;
        case 0x2f: {
          // AMO
          if (!amoInstruction(this, inst, pc)) { pc = this.pc; break run; }
          pc = (pc + ilen) | 0;
          if (this.mmioTouched) { this.mmioTouched = false; break run; }
          continue;
        }
        case 0x73: {
          // SYSTEM: CSR access, ECALL/EBREAK, xRET, WFI, SFENCE.VMA. All leave the loop.
          if (f3 !== 0 && f3 !== 4) {
            // A CSR instruction reads the counters as the instructions before it left them;
            // its own retirement comes after, and a write to minstret (mcycle) takes effect
            // after it (privileged spec 3.3.1): the written value is not incremented.
            this.instret += n - 1 - counted;
            counted = n;
            this.counterWrite = 0;
            pc = csrInstruction(this, inst, pc);
            if ((this.counterWrite & COUNTER_WRITE_INSTRET) === 0) this.instret += 1;
            else this.cycleOffset += 1;
            if ((this.counterWrite & COUNTER_WRITE_CYCLE) !== 0) this.cycleOffset -= 1;
            break run;
          }
          this.instret += n - counted;
          counted = n;
          if (inst === 0x00000073) {
            pc = raiseException(this, EXC_ECALL_U + (this.priv === PRV_M ? 3 : this.priv), 0, pc);
          } else if (inst === 0x00100073) {
            // QEMU 7.2 leaves mtval 0 for EBREAK.
            pc = raiseException(this, EXC_BREAKPOINT, 0, pc);
          } else {
            pc = systemInstruction(this, inst, pc);
          }
          break run;
        }
        default:
          break;
      }
      // Anything that fell out of the switch is not an RV32IMA instruction.
      pc = raiseException(this, EXC_ILLEGAL_INST, inst, pc);
      break run;
    }
    early = false;
    }
    this.stoppedEarly = early;
    this.pc = pc;
    this.instret += n - counted;
    return n;
  }
}

