// The hart's migratable state and its VMState description (QEMU's vmstate_riscv_cpu, vmsd
// name "cpu", target/riscv/machine.c, with PMP and the PMU counters in subsections as QEMU
// has them). The interpreter keeps its fast class fields; saveState copies them into a
// plain object and adoptState copies a loaded one back. The soft TLB is not state: it is
// flushed on adopt, and the PMP summary flags are recomputed.

import type { Migratable } from "../../devices/device.js";
import type { VMStateDescription, VMStateField } from "../migration/vmstate.js";
import { CPU_CSR_NAMES, type Cpu, type CpuCsrName } from "./cpu.js";
import { PRV_M, PRV_S, PRV_U } from "./constants.js";
import { pmpUpdate } from "./pmp.js";

export type CpuVmState = {
  x: Int32Array;
  pc: number;
  priv: number;
  instret: bigint;
  /** mcycle itself (the interpreter keeps it as an offset from instret). */
  mcycle: bigint;
  /** LR/SC reservation: the reserved address, or -1 for none; and the value LR read. */
  load_res: bigint;
  load_val: bigint;
  badaddr: bigint;
  wfi: boolean;
  /** mip.SEIP is seip_software | seip_external (the PLIC's S-context line). */
  seip_software: boolean;
  seip_external: boolean;
  pmpcfg: Uint32Array;
  pmpaddr: Uint32Array;
  /** mhpmcounter3..31 (indexed by counter number), their high halves and events. */
  mhpmcounter: Uint32Array;
  mhpmcounterh: Uint32Array;
  mhpmevent: Uint32Array;
} & Record<CpuCsrName, number>;

/** The interpreter keeps some 32-bit values signed and some unsigned: accept either. */
const I32_OR_U32 = [-0x80000000n, 0xffffffffn] as const;

const csrFields: VMStateField<CpuVmState>[] = CPU_CSR_NAMES.map((name) => ({ name, type: "uint32" }));

const anyNonZero = (a: Uint32Array) => a.some((v) => v !== 0);

export const CPU_VMSD: VMStateDescription<CpuVmState> = {
  name: "cpu",
  version_id: 1,
  minimum_version_id: 1,
  fields: [
    { name: "x", type: "int32", array: 32 },
    { name: "pc", type: "uint32" },
    { name: "priv", type: "uint8", oneOf: [PRV_U, PRV_S, PRV_M] },
    ...csrFields,
    { name: "instret", type: "uint64", range: [0n, 2n ** 53n] },
    { name: "mcycle", type: "uint64" },
    { name: "load_res", type: "int64", range: [-1n, 0xffffffffn] },
    { name: "load_val", type: "int64", range: I32_OR_U32 },
    { name: "badaddr", type: "int64", range: I32_OR_U32 },
    { name: "wfi", type: "bool" },
    { name: "seip_software", type: "bool" },
    { name: "seip_external", type: "bool" },
  ],
  // Defaults for subsections a source leaves out because they are all zero.
  pre_load: (s) => {
    s.pmpcfg = new Uint32Array(4);
    s.pmpaddr = new Uint32Array(16);
    s.mhpmcounter = new Uint32Array(32);
    s.mhpmcounterh = new Uint32Array(32);
    s.mhpmevent = new Uint32Array(32);
  },
  post_load: (s) => (s.x[0] !== 0 ? `x[0] is 0x${(s.x[0] >>> 0).toString(16)}, not 0` : null),
  subsections: [
    {
      name: "cpu/pmp",
      version_id: 1,
      minimum_version_id: 1,
      needed: (s) => anyNonZero(s.pmpcfg) || anyNonZero(s.pmpaddr),
      fields: [
        { name: "pmpcfg", type: "uint32", array: 4 },
        { name: "pmpaddr", type: "uint32", array: 16 },
      ],
    },
    {
      name: "cpu/pmu",
      version_id: 1,
      minimum_version_id: 1,
      needed: (s) => anyNonZero(s.mhpmcounter) || anyNonZero(s.mhpmcounterh) || anyNonZero(s.mhpmevent),
      fields: [
        { name: "mhpmcounter", type: "uint32", array: 32 },
        { name: "mhpmcounterh", type: "uint32", array: 32 },
        { name: "mhpmevent", type: "uint32", array: 32 },
      ],
    },
  ],
};

/** The hart as a migratable section. */
export function cpuMigratable(cpu: Cpu): Migratable<CpuVmState> {
  return {
    vmsd: CPU_VMSD,
    saveState: () => saveCpuState(cpu),
    adoptState: (s) => adoptCpuState(cpu, s),
  };
}

/** A plain copy of the hart's architectural state. */
export function saveCpuState(cpu: Cpu): CpuVmState {
  const x = Int32Array.from(cpu.x);
  // x0 may hold a discarded result until the next instruction clears it; architecturally 0.
  x[0] = 0;
  const csrs = {} as Record<CpuCsrName, number>;
  for (const name of CPU_CSR_NAMES) csrs[name] = cpu[name] >>> 0;
  return {
    ...csrs,
    x,
    pc: cpu.pc >>> 0,
    priv: cpu.priv,
    instret: BigInt(cpu.instret),
    mcycle: BigInt.asUintN(64, BigInt(Math.trunc(cpu.instret + cpu.cycleOffset))),
    // The reservation word is an Int32 (shared with other harts): addresses come back signed.
    load_res: BigInt(cpu.loadRes === -1 ? -1 : cpu.loadRes >>> 0),
    load_val: BigInt(cpu.loadVal),
    badaddr: BigInt(cpu.badaddr),
    wfi: cpu.wfi,
    seip_software: cpu.seipSoftware,
    seip_external: cpu.seipExternal,
    pmpcfg: Uint32Array.from(cpu.pmpcfg),
    pmpaddr: Uint32Array.from(cpu.pmpaddr),
    mhpmcounter: Uint32Array.from(cpu.mhpmcounter),
    mhpmcounterh: Uint32Array.from(cpu.mhpmcounterh),
    mhpmevent: Uint32Array.from(cpu.mhpmevent),
  };
}

/** Copy a loaded state into the hart; flushes the soft TLB and recomputes the PMP summary. */
export function adoptCpuState(cpu: Cpu, s: CpuVmState): void {
  cpu.x.set(s.x);
  cpu.x[0] = 0;
  cpu.pc = s.pc | 0;
  cpu.priv = s.priv;
  // The interpreter keeps CSRs as signed 32-bit values.
  for (const name of CPU_CSR_NAMES) cpu[name] = s[name] | 0;
  cpu.instret = Number(s.instret);
  cpu.cycleOffset = Number(s.mcycle) - cpu.instret;
  cpu.loadRes = Number(s.load_res) | 0;
  cpu.loadVal = Number(s.load_val);
  cpu.badaddr = Number(s.badaddr);
  cpu.wfi = s.wfi;
  cpu.seipSoftware = s.seip_software;
  cpu.seipExternal = s.seip_external;
  cpu.pmpcfg.set(s.pmpcfg);
  cpu.pmpaddr.set(s.pmpaddr);
  cpu.mhpmcounter.set(s.mhpmcounter);
  cpu.mhpmcounterh.set(s.mhpmcounterh);
  cpu.mhpmevent.set(s.mhpmevent);
  // pmpUpdate also flushes the TLB: cached translations belong to the old state.
  pmpUpdate(cpu);
  cpu.flushTlb();
}
