// The hart's VMState: one CSR table drives reset and migration; adopting a state flushes
// the soft TLB and recomputes the PMP summary.

import { describe, expect, it } from "vitest";
import { Cpu, CPU_CSR_NAMES, CPU_CSRS } from "../../src/cpu/cpu.js";
import { adoptCpuState, CPU_VMSD, saveCpuState } from "../../src/cpu/state.js";
import { loadStateBytes, saveStateBytes } from "../../src/migration/vmstate.js";

function cpu(): Cpu {
  return new Cpu(new SharedArrayBuffer(4096), 0x80000000, 4096, new Int32Array(1), {} as never);
}

describe("hart state", () => {
  it("saves every CSR of the table, and reset() clears exactly the ones with a reset value", () => {
    const c = cpu();
    CPU_CSR_NAMES.forEach((n, i) => (c[n] = i + 1));
    const s = saveCpuState(c);
    CPU_CSR_NAMES.forEach((n, i) => expect(s[n]).toBe(i + 1));
    c.reset(0x1000);
    for (const n of CPU_CSR_NAMES) expect(c[n]).toBe(CPU_CSRS[n] ?? CPU_CSR_NAMES.indexOf(n) + 1);
  });

  it("moves registers, LR/SC reservation, PMP and counters to another hart, flushing its TLB", () => {
    const a = cpu();
    a.x[5] = -7;
    a.pc = 0x80000010;
    a.loadRes = 0x80000100;
    a.loadVal = -1;
    a.pmpcfg[0] = 0x18; // entry 0 NAPOT, no permissions
    a.pmpaddr[0] = 0x200003ff;
    a.mhpmcounter[3] = 9;
    a.instret = 2 ** 40;
    a.cycleOffset = 5;
    const bytes = saveStateBytes(CPU_VMSD, saveCpuState(a));
    const b = cpu();
    b.tlbRTag[0] = 1;
    adoptCpuState(b, loadStateBytes(CPU_VMSD, 1, bytes, saveCpuState(b)));
    expect(b.x[5]).toBe(-7);
    expect(b.pc).toBe(0x80000010 | 0);
    expect([b.loadRes >>> 0, b.loadVal]).toEqual([0x80000100, -1]); // the shared reservation word is an Int32
    expect(b.pmpActive).toBe(true);
    expect(b.mhpmcounter[3]).toBe(9);
    expect(b.instret + b.cycleOffset).toBe(2 ** 40 + 5);
    expect(b.tlbRTag[0]).toBe(-1);
    expect(saveStateBytes(CPU_VMSD, saveCpuState(b))).toEqual(bytes);
  });
});
