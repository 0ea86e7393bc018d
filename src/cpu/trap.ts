// Trap entry and return (privileged spec 3.1.6.1, 3.1.7-3.1.9, 3.3.2, 4.1.1):
// exceptions and interrupts with medeleg/mideleg delegation and the standard priority
// order, xRET, WFI and SFENCE.VMA. QEMU 7.2 (cpu_helper.c riscv_cpu_do_interrupt,
// op_helper.c) is the reference for the corner cases.

import {
  EXC_BREAKPOINT,
  EXC_ILLEGAL_INST,
  EXC_INST_MISALIGNED,
  IRQ_MEI,
  IRQ_MSI,
  IRQ_MTI,
  IRQ_SEI,
  IRQ_SSI,
  IRQ_STI,
  MISA_C,
  MSTATUS_MIE,
  MSTATUS_MPIE,
  MSTATUS_MPP,
  MSTATUS_MPP_SHIFT,
  MSTATUS_MPRV,
  MSTATUS_SIE,
  MSTATUS_SPIE,
  MSTATUS_SPP,
  MSTATUS_TSR,
  MSTATUS_TVM,
  MSTATUS_TW,
  PRV_M,
  PRV_S,
  PRV_U,
} from "./constants.js";
import type { Cpu } from "./cpu.js";

/** Change privilege; QEMU's riscv_cpu_set_mode also drops the LR reservation. */
export function setMode(cpu: Cpu, priv: number): void {
  cpu.priv = priv;
  cpu.loadRes = -1;
}

function enterTrap(cpu: Cpu, cause: number, interrupt: boolean, tval: number, epc: number): number {
  const code = cause & 0x1f;
  const deleg = interrupt ? cpu.mideleg : cpu.medeleg;
  const mcause = interrupt ? (cause | 0x80000000) | 0 : cause;
  if (cpu.priv <= PRV_S && ((deleg >>> code) & 1) !== 0) {
    let s = cpu.mstatus;
    s = (s & MSTATUS_SIE) !== 0 ? s | MSTATUS_SPIE : s & ~MSTATUS_SPIE;
    s = cpu.priv === PRV_S ? s | MSTATUS_SPP : s & ~MSTATUS_SPP;
    s &= ~MSTATUS_SIE;
    cpu.mstatus = s;
    cpu.scause = mcause;
    cpu.sepc = epc | 0;
    cpu.stval = tval | 0;
    setMode(cpu, PRV_S);
    const base = cpu.stvec & ~3;
    return (interrupt && (cpu.stvec & 3) === 1 ? base + 4 * code : base) | 0;
  }
  let s = cpu.mstatus;
  s = (s & MSTATUS_MIE) !== 0 ? s | MSTATUS_MPIE : s & ~MSTATUS_MPIE;
  s = (s & ~MSTATUS_MPP) | (cpu.priv << MSTATUS_MPP_SHIFT);
  s &= ~MSTATUS_MIE;
  cpu.mstatus = s;
  cpu.mcause = mcause;
  cpu.mepc = epc | 0;
  cpu.mtval = tval | 0;
  setMode(cpu, PRV_M);
  const base = cpu.mtvec & ~3;
  return (interrupt && (cpu.mtvec & 3) === 1 ? base + 4 * code : base) | 0;
}

/** Take synchronous exception `cause` for the instruction at `epc`; returns the new pc. */
export function raiseException(cpu: Cpu, cause: number, tval: number, epc: number): number {
  // QEMU's env->badaddr: remembered for memory exceptions (an xRET to a misaligned xepc
  // reports whatever it last held).
  if (cause !== EXC_ILLEGAL_INST && cause !== EXC_BREAKPOINT && (cause < 8 || cause > 11)) cpu.badaddr = tval;
  const pc = enterTrap(cpu, cause, false, tval, epc);
  cpu.pc = pc;
  return pc;
}

// Privileged spec 3.1.9: MEI, MSI, MTI, SEI, SSI, STI.
const PRIORITY = [IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI];

/** The interrupt the hart would take now, or -1. */
export function pendingInterrupt(cpu: Cpu): number {
  const pending = cpu.mip & cpu.mie;
  if (pending === 0) return -1;
  const mEnabled = cpu.priv < PRV_M || (cpu.mstatus & MSTATUS_MIE) !== 0;
  const sEnabled = cpu.priv < PRV_S || (cpu.priv === PRV_S && (cpu.mstatus & MSTATUS_SIE) !== 0);
  const m = mEnabled ? pending & ~cpu.mideleg : 0;
  const s = sEnabled ? pending & cpu.mideleg : 0;
  const set = m !== 0 ? m : s;
  if (set === 0) return -1;
  for (let i = 0; i < PRIORITY.length; i++) {
    if ((set >>> PRIORITY[i]) & 1) return PRIORITY[i];
  }
  return -1;
}

/** Take the highest-priority enabled interrupt, if any. True when one was taken. */
export function takeInterrupt(cpu: Cpu): boolean {
  const irq = pendingInterrupt(cpu);
  if (irq < 0) return false;
  cpu.wfi = false;
  cpu.pc = enterTrap(cpu, irq, true, 0, cpu.pc);
  return true;
}

/** True when some pmpcfg entry has a non-OFF address-matching mode (QEMU pmp_get_num_rules). */
function pmpHasRules(cpu: Cpu): boolean {
  return cpu.pmpActive;
}

/** MRET, SRET, WFI, SFENCE.VMA (SYSTEM with funct3 = 0 other than ECALL/EBREAK). */
export function systemInstruction(cpu: Cpu, inst: number, pc: number): number {
  if (inst === 0x30200073) {
    // MRET
    if (cpu.priv < PRV_M) return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
    let prev = (cpu.mstatus & MSTATUS_MPP) >>> MSTATUS_MPP_SHIFT;
    // QEMU 7.2 helper_mret: leaving M while no PMP entry is active is an illegal instruction.
    if (prev !== PRV_M && !pmpHasRules(cpu)) return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
    if (prev === 2) prev = PRV_U; // reserved encoding: QEMU's set_mode turns "H" into U
    // Without C, a misaligned mepc raises at the mret (QEMU helper_mret), tval = stale badaddr.
    if ((cpu.mepc & 3) !== 0 && (cpu.misa & MISA_C) === 0) return raiseException(cpu, EXC_INST_MISALIGNED, cpu.badaddr, pc);
    let s = cpu.mstatus;
    s = (s & MSTATUS_MPIE) !== 0 ? s | MSTATUS_MIE : s & ~MSTATUS_MIE;
    s |= MSTATUS_MPIE;
    s &= ~MSTATUS_MPP; // MPP <- U
    if (prev !== PRV_M) s &= ~MSTATUS_MPRV;
    cpu.mstatus = s;
    setMode(cpu, prev);
    return cpu.mepc;
  }
  if (inst === 0x10200073) {
    // SRET
    if (cpu.priv < PRV_S || (cpu.priv === PRV_S && (cpu.mstatus & MSTATUS_TSR) !== 0)) {
      return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
    }
    if ((cpu.sepc & 3) !== 0 && (cpu.misa & MISA_C) === 0) return raiseException(cpu, EXC_INST_MISALIGNED, cpu.badaddr, pc);
    const prev = (cpu.mstatus & MSTATUS_SPP) !== 0 ? PRV_S : PRV_U;
    let s = cpu.mstatus;
    s = (s & MSTATUS_SPIE) !== 0 ? s | MSTATUS_SIE : s & ~MSTATUS_SIE;
    s |= MSTATUS_SPIE;
    s &= ~MSTATUS_SPP;
    s &= ~MSTATUS_MPRV;
    cpu.mstatus = s;
    setMode(cpu, prev);
    return cpu.sepc;
  }
  if (inst === 0x10500073) {
    // WFI: illegal in U, and in S when mstatus.TW (QEMU helper_wfi).
    if (cpu.priv === PRV_U || (cpu.priv === PRV_S && (cpu.mstatus & MSTATUS_TW) !== 0)) {
      return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
    }
    if ((cpu.mip & cpu.mie) === 0) cpu.wfi = true;
    return (pc + 4) | 0;
  }
  if ((inst & 0xfe007fff) === 0x12000073) {
    // SFENCE.VMA: illegal in U, and in S when mstatus.TVM.
    if (cpu.priv === PRV_U || (cpu.priv === PRV_S && (cpu.mstatus & MSTATUS_TVM) !== 0)) {
      return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
    }
    cpu.flushTlb();
    return (pc + 4) | 0;
  }
  return raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
}
