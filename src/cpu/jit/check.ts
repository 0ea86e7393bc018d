// `--accel check`: the block compiler with every compiled region run twice, compiled and
// then interpreted from the same starting state, and the results compared (registers, pc,
// privilege, every CSR, instret/mcycle, the reservation, and the RAM the region wrote).
// A difference throws with the region's pc and the first differing field. Regions that
// reached a device or the HTIF page are not re-run (their side effects cannot be undone)
// and count as unchecked. Slow: for debugging the compiler, not for running guests.

import { ACCESS_STORE } from "../constants.js";
import type { Cpu } from "../cpu.js";
import { translate } from "../mmu.js";
import { adoptCpuState, saveCpuState, type CpuVmState } from "../state.js";
import { Jit, type RegionFn } from "./engine.js";

export class CheckedJit extends Jit {
  checked = 0;
  unchecked = 0;
  /** (RAM offset, old byte) pairs for every byte compiled code may have stored. */
  private readonly journal: number[] = [];

  constructor(cpu: Cpu, exitWord: Int32Array | null) {
    super(cpu, exitWord);
    // Every store goes through memory.ts, where the journal can see it.
    this.setFastMemory(false);
    const rt = this.rt;
    const realStore = rt.storeSlow;
    const realAmo = rt.amo;
    rt.storeSlow = (c, a, f3, v, pc) => {
      this.record(a, 1 << f3);
      return realStore(c, a, f3, v, pc);
    };
    rt.amo = (c, inst, pc) => {
      this.record(c.x[(inst >>> 15) & 31], 4);
      return realAmo(c, inst, pc);
    };
    this.checker = (fn, n, budget, pc, dtag) => this.run(fn, n, budget, pc, dtag);
  }

  private record(va: number, size: number): void {
    const cpu = this.cpu;
    for (let k = 0; k < size; k++) {
      const pa = translate(cpu, (va + k) | 0, ACCESS_STORE, cpu.dataPriv(), true);
      const off = pa - cpu.ramBase;
      if (pa >= 0 && off >= 0 && off < cpu.ramSize) this.journal.push(off, cpu.ram8[off]);
    }
  }

  private run(fn: RegionFn, n: number, budget: number, pc: number, dtag: number): number {
    const cpu = this.cpu;
    const before = saveCpuState(cpu);
    this.journal.length = 0;
    const n1 = fn(n, budget, pc, dtag);
    const stop = this.rt.stop;
    const j = this.journal;
    let undoable = !cpu.mmioTouched;
    for (let i = 0; i < j.length && undoable; i += 2) if (j[i] >>> 12 === cpu.htifPage) undoable = false;
    if (n1 === n || !undoable) {
      if (n1 !== n) this.unchecked++;
      return n1;
    }
    const after = saveCpuState(cpu);
    const written = j.map((v, i) => (i % 2 === 0 ? v : cpu.ram8[j[i - 1]]));
    for (let i = j.length - 2; i >= 0; i -= 2) cpu.ram8[j[i]] = j[i + 1];
    adoptCpuState(cpu, before);
    const k = n1 - n;
    const got = cpu.execute(k);
    const where = `--accel check: region entered at 0x${(pc >>> 0).toString(16)} (${k} instructions)`;
    if (got !== k) throw new Error(`${where}: the interpreter ran ${got} instructions, the compiled code ${k}`);
    if (cpu.stoppedEarly !== (stop !== 0)) {
      throw new Error(`${where}: the interpreter ${cpu.stoppedEarly ? "stopped" : "did not stop"} early, the compiled code ${stop ? "did" : "did not"}`);
    }
    const diff = firstDifference(after, saveCpuState(cpu));
    if (diff !== null) throw new Error(`${where}: ${diff}`);
    for (let i = 0; i < j.length; i += 2) {
      if (cpu.ram8[j[i]] !== written[i + 1]) {
        throw new Error(`${where}: RAM offset 0x${j[i].toString(16)} is 0x${written[i + 1].toString(16)} compiled, 0x${cpu.ram8[j[i]].toString(16)} interpreted`);
      }
    }
    this.checked++;
    return n1;
  }
}

function show(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `[${Array.from(v as unknown as ArrayLike<number>).join(",")}]`;
  return String(v);
}

function firstDifference(jit: CpuVmState, interp: CpuVmState): string | null {
  for (const key of Object.keys(interp) as (keyof CpuVmState)[]) {
    const a = show(jit[key]);
    const b = show(interp[key]);
    if (a !== b) return `${key} is ${a} compiled, ${b} interpreted`;
  }
  return null;
}
