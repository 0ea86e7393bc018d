// The hart's architectural state as a plain, versioned, JSON-serialisable object, for
// migration (DESIGN.md §6) and snapshots. The soft TLB is not state: it is flushed on load.

import type { Cpu } from "./cpu.js";
import { pmpUpdate } from "./pmp.js";

export interface CpuStateV1 {
  version: 1;
  x: number[];
  pc: number;
  priv: number;
  csr: Record<string, number>;
  pmpcfg: number[];
  pmpaddr: number[];
  hpm: { counter: number[]; counterh: number[]; event: number[] };
  instret: number;
  cycleOffset: number;
  loadRes: number;
  loadVal: number;
  wfi: boolean;
  badaddr: number;
  seipSoftware: boolean;
  seipExternal: boolean;
}

const CSR_FIELDS = [
  "mstatus", "mstatush", "misa", "medeleg", "mideleg", "mie", "mip", "mtvec", "mepc", "mcause", "mtval",
  "mscratch", "mcounteren", "mcountinhibit", "menvcfg", "stvec", "sepc", "scause", "stval", "sscratch",
  "scounteren", "senvcfg", "satp", "menvcfgh",
] as const;

export function saveCpu(cpu: Cpu): CpuStateV1 {
  const csr: Record<string, number> = {};
  for (const f of CSR_FIELDS) csr[f] = cpu[f];
  return {
    version: 1,
    x: Array.from(cpu.x),
    pc: cpu.pc,
    priv: cpu.priv,
    csr,
    pmpcfg: Array.from(cpu.pmpcfg),
    pmpaddr: Array.from(cpu.pmpaddr),
    hpm: { counter: Array.from(cpu.mhpmcounter), counterh: Array.from(cpu.mhpmcounterh), event: Array.from(cpu.mhpmevent) },
    instret: cpu.instret,
    cycleOffset: cpu.cycleOffset,
    loadRes: cpu.loadRes,
    loadVal: cpu.loadVal,
    wfi: cpu.wfi,
    badaddr: cpu.badaddr,
    seipSoftware: cpu.seipSoftware,
    seipExternal: cpu.seipExternal,
  };
}

export function loadCpu(cpu: Cpu, s: CpuStateV1): void {
  if (s.version !== 1) throw new Error(`CPU state version ${String(s.version)} is not supported (expected 1)`);
  if (s.x.length !== 32) throw new Error(`CPU state has ${s.x.length} registers, expected 32`);
  cpu.x.set(s.x);
  cpu.x[0] = 0;
  cpu.pc = s.pc | 0;
  if (s.priv !== 0 && s.priv !== 1 && s.priv !== 3) throw new Error(`CPU state privilege ${s.priv} is not U, S or M`);
  cpu.priv = s.priv;
  for (const f of CSR_FIELDS) {
    const v = s.csr[f];
    if (typeof v !== "number") throw new Error(`CPU state lacks CSR ${f}`);
    cpu[f] = v | 0;
  }
  cpu.pmpcfg.set(s.pmpcfg);
  cpu.pmpaddr.set(s.pmpaddr);
  cpu.mhpmcounter.set(s.hpm.counter);
  cpu.mhpmcounterh.set(s.hpm.counterh);
  cpu.mhpmevent.set(s.hpm.event);
  cpu.instret = s.instret;
  cpu.cycleOffset = s.cycleOffset;
  cpu.loadRes = s.loadRes;
  cpu.loadVal = s.loadVal;
  cpu.wfi = s.wfi;
  cpu.badaddr = s.badaddr;
  cpu.seipSoftware = s.seipSoftware;
  cpu.seipExternal = s.seipExternal;
  pmpUpdate(cpu);
}
