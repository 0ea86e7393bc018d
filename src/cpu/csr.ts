// The CSR file (privileged spec chapter 2 for the address rules, chapters 3-4 for each
// register) and the Zicsr instructions. Masks and predicates follow QEMU 7.2's
// target/riscv/csr.c for an rv32 CPU with I, M, A, S, U and no F/V/H.

import {
  COUNTER_WRITE_CYCLE,
  COUNTER_WRITE_INSTRET,
  EXC_ILLEGAL_INST,
  MIP_SEIP,
  MIP_SSIP,
  MIP_STIP,
  MSTATUS_MIE,
  MSTATUS_MPIE,
  MSTATUS_MPP,
  MSTATUS_MPRV,
  MSTATUS_MXR,
  MSTATUS_SIE,
  MSTATUS_SPIE,
  MSTATUS_SPP,
  MSTATUS_SUM,
  MSTATUS_TSR,
  MSTATUS_TVM,
  MSTATUS_TW,
  PRV_M,
  PRV_S,
  PRV_U,
} from "./constants.js";
import type { Cpu } from "./cpu.js";
import { pmpUpdate } from "./pmp.js";
import { raiseException } from "./trap.js";

// Writable mstatus bits with no F, V or H (QEMU write_mstatus).
// QEMU 7.2 keeps VS writable even without V (checked against qemu-system-riscv32).
const MSTATUS_VS = 3 << 9;
const MSTATUS_WRITE =
  MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP |
  MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TSR | MSTATUS_TW | MSTATUS_VS;
const MSTATUS_SD = 1 << 31;
// The sstatus view: SIE SPIE UBE SPP VS FS XS SUM MXR SD.
const SSTATUS_MASK = MSTATUS_SIE | MSTATUS_SPIE | (1 << 6) | MSTATUS_SPP | (3 << 9) | (3 << 13) | (3 << 15) |
  MSTATUS_SUM | MSTATUS_MXR | (1 << 31);
const S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP;
// QEMU 7.2 csr.c: delegable_ints = S, VS and LCOFI (13) interrupts, all_ints = M, S, HS
// and LCOFI; the VS/HS bits are writable even without H. (SGEIP, bit 12, is masked out.)
const DELEGABLE_INTS = 0x2666;
const ALL_INTS = 0x2eee;
const S_INTERRUPTS_LCOFI = S_INTERRUPTS | (1 << 13);
// DELEGABLE_EXCPS: causes 0-11, 12, 13, 15, 20-23.
const DELEGABLE_EXCPS = 0xf0bfff;
// QEMU 7.2 rmw_mip: delegable_ints (S, VS and LCOFI bits) are writable.
const MIP_WRITABLE = DELEGABLE_INTS;

export const CSR = {
  sstatus: 0x100, sie: 0x104, stvec: 0x105, scounteren: 0x106, senvcfg: 0x10a,
  sscratch: 0x140, sepc: 0x141, scause: 0x142, stval: 0x143, sip: 0x144, satp: 0x180,
  mstatus: 0x300, misa: 0x301, medeleg: 0x302, mideleg: 0x303, mie: 0x304, mtvec: 0x305,
  mcounteren: 0x306, menvcfg: 0x30a, mstatush: 0x310, menvcfgh: 0x31a, mcountinhibit: 0x320,
  mscratch: 0x340, mepc: 0x341, mcause: 0x342, mtval: 0x343, mip: 0x344,
  pmpcfg0: 0x3a0, pmpaddr0: 0x3b0,
  tselect: 0x7a0, tdata1: 0x7a1, tdata2: 0x7a2, tdata3: 0x7a3, tinfo: 0x7a4,
  mcycle: 0xb00, minstret: 0xb02, mcycleh: 0xb80, minstreth: 0xb82,
  cycle: 0xc00, time: 0xc01, instret: 0xc02, cycleh: 0xc80, timeh: 0xc81, instreth: 0xc82,
  mvendorid: 0xf11, marchid: 0xf12, mimpid: 0xf13, mhartid: 0xf14, mconfigptr: 0xf15,
} as const;

/** Does the counter CSR (cycle/time/instret/hpmcounterN and their h halves) answer here? */
/** marchid and mimpid: QEMU reports its own version, 7.2.22 for the reference build. */
const QEMU_ARCHID = (7 << 16) | (2 << 8) | 22;

/** Programmable counters QEMU 7.2's default PMU provides (pmu-num = 16: 3..18). */
function hpm(n: number): boolean {
  return n >= 3 && n <= 18;
}

function counterAllowed(cpu: Cpu, csr: number): boolean {
  const index = csr & 0x1f;
  if (cpu.priv === PRV_M) return true;
  if (((cpu.mcounteren >>> index) & 1) === 0) return false;
  if (cpu.priv === PRV_U && ((cpu.scounteren >>> index) & 1) === 0) return false;
  return true;
}

function high(v: number): number {
  return Math.floor(v / 4294967296) | 0;
}

/** Read a CSR; null when it does not exist or is not accessible (illegal instruction). */
export function readCsr(cpu: Cpu, csr: number): number | null {
  switch (csr) {
    case CSR.sstatus: return cpu.mstatus & SSTATUS_MASK;
    case CSR.sie: return cpu.mie & cpu.mideleg & S_INTERRUPTS_LCOFI;
    case CSR.stvec: return cpu.stvec;
    case CSR.scounteren: return cpu.scounteren;
    case CSR.senvcfg: return cpu.senvcfg;
    case CSR.sscratch: return cpu.sscratch;
    case CSR.sepc: return cpu.sepc;
    case CSR.scause: return cpu.scause;
    case CSR.stval: return cpu.stval;
    case CSR.sip: return cpu.mip & cpu.mideleg & S_INTERRUPTS_LCOFI;
    case CSR.satp:
      if (cpu.priv === PRV_S && (cpu.mstatus & MSTATUS_TVM) !== 0) return null;
      return cpu.satp;
    case CSR.mstatus: return cpu.mstatus;
    case CSR.misa: return cpu.misa;
    case CSR.medeleg: return cpu.medeleg;
    case CSR.mideleg: return cpu.mideleg;
    case CSR.mie: return cpu.mie;
    case CSR.mtvec: return cpu.mtvec;
    case CSR.mcounteren: return cpu.mcounteren;
    case CSR.menvcfg: return cpu.menvcfg;
    case CSR.mstatush: return cpu.mstatush;
    case CSR.marchid: case CSR.mimpid: return QEMU_ARCHID;
    case CSR.menvcfgh: return cpu.menvcfgh;
    case CSR.mcountinhibit: return cpu.mcountinhibit;
    case CSR.mscratch: return cpu.mscratch;
    case CSR.mepc: return cpu.mepc;
    case CSR.mcause: return cpu.mcause;
    case CSR.mtval: return cpu.mtval;
    case CSR.mip: return cpu.mip;
    case CSR.tselect: case CSR.tdata1: case CSR.tdata2: case CSR.tdata3: case CSR.tinfo:
      return 0;
    case CSR.mcycle: return (cpu.instret + cpu.cycleOffset) | 0;
    case CSR.mcycleh: return high(cpu.instret + cpu.cycleOffset);
    case CSR.minstret: return cpu.instret | 0;
    case CSR.minstreth: return high(cpu.instret);
    case CSR.mvendorid: case CSR.mhartid: case CSR.mconfigptr:
      return 0;
  }
  if (csr >= 0x3a0 && csr <= 0x3a3) return cpu.pmpcfg[csr - 0x3a0] | 0;
  if (csr >= 0x3b0 && csr <= 0x3bf) return cpu.pmpaddr[csr - 0x3b0] | 0;
  // mhpmcounter19..31 do not exist on QEMU's default PMU (the events CSRs all do).
  if (csr >= 0xb03 && csr <= 0xb1f) return hpm(csr - 0xb00) ? cpu.mhpmcounter[csr - 0xb00] | 0 : null;
  if (csr >= 0xb83 && csr <= 0xb9f) return hpm(csr - 0xb80) ? cpu.mhpmcounterh[csr - 0xb80] | 0 : null;
  if (csr >= 0x323 && csr <= 0x33f) return hpm(csr - 0x320) ? cpu.mhpmevent[csr - 0x320] | 0 : 0;
  if ((csr >= 0xc00 && csr <= 0xc1f) || (csr >= 0xc80 && csr <= 0xc9f)) {
    if (!counterAllowed(cpu, csr)) return null;
    switch (csr) {
      case CSR.cycle: return (cpu.instret + cpu.cycleOffset) | 0;
      case CSR.cycleh: return high(cpu.instret + cpu.cycleOffset);
      case CSR.instret: return cpu.instret | 0;
      case CSR.instreth: return high(cpu.instret);
      case CSR.time: return cpu.bus.mtime() % 4294967296 | 0;
      case CSR.timeh: return high(cpu.bus.mtime());
      default: {
        // hpmcounterN: QEMU 7.2 has 3..18 (pmu-num=16); the others do not exist.
        const n = csr & 0x1f;
        if (!hpm(n)) return null;
        return (csr >= 0xc80 ? cpu.mhpmcounterh[n] : cpu.mhpmcounter[n]) | 0;
      }
    }
  }
  return null;
}

/** Write a CSR whose existence and privilege were already checked; false = illegal. */
export function writeCsr(cpu: Cpu, csr: number, v: number): boolean {
  v |= 0;
  switch (csr) {
    case CSR.sstatus:
      writeMstatus(cpu, (cpu.mstatus & ~SSTATUS_MASK) | (v & SSTATUS_MASK));
      return true;
    case CSR.sie: {
      const mask = cpu.mideleg & S_INTERRUPTS_LCOFI;
      cpu.mie = (cpu.mie & ~mask) | (v & mask);
      return true;
    }
    case CSR.stvec:
      if ((v & 3) < 2) cpu.stvec = v;
      return true;
    case CSR.scounteren: cpu.scounteren = v; return true;
    case CSR.senvcfg: cpu.senvcfg = v & 0xf1; return true;
    case CSR.sscratch: cpu.sscratch = v; return true;
    case CSR.sepc: cpu.sepc = v; return true;
    case CSR.scause: cpu.scause = v; return true;
    case CSR.stval: cpu.stval = v; return true;
    case CSR.sip: {
      const mask = cpu.mideleg & (MIP_SSIP | (1 << 13));
      cpu.mip = (cpu.mip & ~mask) | (v & mask);
      return true;
    }
    case CSR.satp:
      if (cpu.priv === PRV_S && (cpu.mstatus & MSTATUS_TVM) !== 0) return false;
      cpu.satp = v;
      cpu.flushTlb();
      return true;
    case CSR.mstatus: writeMstatus(cpu, v); return true;
    case CSR.misa: return true;
    case CSR.medeleg: cpu.medeleg = v & DELEGABLE_EXCPS; return true;
    case CSR.mideleg: cpu.mideleg = v & DELEGABLE_INTS; return true;
    case CSR.mie: cpu.mie = v & ALL_INTS; return true;
    case CSR.mtvec:
      if ((v & 3) < 2) cpu.mtvec = v;
      return true;
    case CSR.mcounteren: cpu.mcounteren = v; return true;
    case CSR.menvcfg: cpu.menvcfg = v & 0xf1; return true;
    case CSR.mstatush: cpu.mstatush = v & 0xc0; return true; // GVA/MPV stick in QEMU 7.2 even without H
    case CSR.menvcfgh: cpu.menvcfgh = v & 0xc0000000; return true; // PBMTE, STCE
    case CSR.mcountinhibit: cpu.mcountinhibit = v; return true;
    case CSR.mscratch: cpu.mscratch = v; return true;
    case CSR.mepc: cpu.mepc = v; return true;
    case CSR.mcause: cpu.mcause = v; return true;
    case CSR.mtval: cpu.mtval = v; return true;
    case CSR.mip:
      // SEIP as read is the software-written bit OR the PLIC's line (QEMU software_seip).
      cpu.seipSoftware = (v & MIP_SEIP) !== 0;
      cpu.mip = (cpu.mip & ~MIP_WRITABLE) | (v & MIP_WRITABLE) | (cpu.seipExternal ? MIP_SEIP : 0);
      return true;
    case CSR.tselect: case CSR.tdata1: case CSR.tdata2: case CSR.tdata3: case CSR.tinfo:
      return true;
    case CSR.mcycle:
      cpu.counterWrite |= COUNTER_WRITE_CYCLE;
      cpu.cycleOffset = high(cpu.instret + cpu.cycleOffset) * 4294967296 + (v >>> 0) - cpu.instret;
      return true;
    case CSR.mcycleh:
      cpu.counterWrite |= COUNTER_WRITE_CYCLE;
      cpu.cycleOffset = (v >>> 0) * 4294967296 + ((cpu.instret + cpu.cycleOffset) % 4294967296) - cpu.instret;
      return true;
    case CSR.minstret: {
      cpu.counterWrite |= COUNTER_WRITE_INSTRET;
      const old = cpu.instret + cpu.cycleOffset;
      cpu.instret = high(cpu.instret) * 4294967296 + (v >>> 0);
      cpu.cycleOffset = old - cpu.instret;
      return true;
    }
    case CSR.minstreth: {
      cpu.counterWrite |= COUNTER_WRITE_INSTRET;
      const old = cpu.instret + cpu.cycleOffset;
      cpu.instret = (v >>> 0) * 4294967296 + (cpu.instret % 4294967296);
      cpu.cycleOffset = old - cpu.instret;
      return true;
    }
  }
  if (csr >= 0x3a0 && csr <= 0x3a3) {
    // Locked entries (L, bit 7 of each byte) keep their configuration.
    const old = cpu.pmpcfg[csr - 0x3a0];
    let nv = 0;
    for (let b = 0; b < 4; b++) {
      const ob = (old >>> (8 * b)) & 0xff;
      let nb = (v >>> (8 * b)) & 0xff;
      if ((ob & 0x80) !== 0) nb = ob;
      else if ((nb & 3) === 2) nb = ob; // W without R is reserved: keep the old value (QEMU)
      nv |= (nb & 0x9f) << (8 * b);
    }
    cpu.pmpcfg[csr - 0x3a0] = nv;
    pmpUpdate(cpu);
    return true;
  }
  if (csr >= 0x3b0 && csr <= 0x3bf) {
    const i = csr - 0x3b0;
    const cfg = (cpu.pmpcfg[i >>> 2] >>> (8 * (i & 3))) & 0xff;
    if ((cfg & 0x80) === 0) cpu.pmpaddr[i] = v;
    pmpUpdate(cpu);
    return true;
  }
  // mhpmcounterN/mhpmeventN: counters 3..18 hold what is written (no events are counted).
  if (csr >= 0xb03 && csr <= 0xb1f && hpm(csr - 0xb00)) cpu.mhpmcounter[csr - 0xb00] = v;
  else if (csr >= 0xb83 && csr <= 0xb9f && hpm(csr - 0xb80)) cpu.mhpmcounterh[csr - 0xb80] = v;
  else if (csr >= 0x323 && csr <= 0x33f && hpm(csr - 0x320)) cpu.mhpmevent[csr - 0x320] = v;
  return true;
}

function writeMstatus(cpu: Cpu, v: number): void {
  const old = cpu.mstatus;
  // QEMU 7.2 stores MPP = 2 as written (mret then enters U, as its set_mode does for "H").
  let nv = (old & ~MSTATUS_WRITE) | (v & MSTATUS_WRITE);
  if ((nv & MSTATUS_VS) === MSTATUS_VS) nv |= MSTATUS_SD;
  else nv &= ~MSTATUS_SD;
  cpu.mstatus = nv;
  if (((old ^ nv) & (MSTATUS_SUM | MSTATUS_MXR)) !== 0) cpu.flushTlb();
}

/** Execute CSRRW/CSRRS/CSRRC and their immediate forms; returns the next pc. */
export function csrInstruction(cpu: Cpu, inst: number, pc: number): number {
  const csr = inst >>> 20;
  const f3 = (inst >>> 12) & 7;
  const rd = (inst >>> 7) & 31;
  const rs1 = (inst >>> 15) & 31;
  const op = f3 & 3;
  if (op === 0) return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
  const src = f3 >= 5 ? rs1 : cpu.x[rs1];
  // QEMU 7.2 decides "is this a write" for CSRRS/CSRRC by the mask value, not the rs1
  // field: csrrs with a zero-valued register may read a read-only CSR.
  const writes = op === 1 || src !== 0;
  // Privileged spec 2.1: bits 9:8 give the lowest privilege, bits 11:10 = 3 mean read-only.
  if (((csr >>> 8) & 3) > cpu.priv) return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
  if (writes && csr >>> 10 === 3) return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
  const old = readCsr(cpu, csr);
  if (old === null) return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
  if (writes) {
    let nv = op === 1 ? src : op === 2 ? old | src : old & ~src;
    if (csr === CSR.mip && op !== 1 && (src & MIP_SEIP) === 0) {
      // Privileged spec 3.1.9: only the software-writable SEIP bit takes part in a CSRRS/CSRRC
      // (QEMU's rmw_mip writes only the masked bits). Writing back the SEIP we read, which
      // includes the PLIC's line, would latch it in software and leave SEIP stuck high.
      nv = (nv & ~MIP_SEIP) | (cpu.seipSoftware ? MIP_SEIP : 0);
    }
    if (!writeCsr(cpu, csr, nv)) return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
  }
  if (rd !== 0) cpu.x[rd] = old;
  return (pc + 4) | 0;
}

export { PRV_M, PRV_S, PRV_U };
