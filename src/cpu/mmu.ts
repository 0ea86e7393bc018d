// Sv32 address translation (privileged spec 4.3), following QEMU 7.2's
// get_physical_address: two-level walk, permission checks with SUM/MXR, A and D set by
// "hardware" (an atomic update of the PTE in RAM), a PTE outside RAM is a page fault.

import { ACCESS_FETCH, ACCESS_LOAD, ACCESS_STORE, MSTATUS_MXR, MSTATUS_SUM, PRV_M, PRV_S, PRV_U } from "./constants.js";
import type { Cpu } from "./cpu.js";
import { pmpAllows } from "./pmp.js";

const PTE_V = 1;
const PTE_R = 2;
const PTE_W = 4;
const PTE_X = 8;
const PTE_U = 16;
const PTE_A = 64;
const PTE_D = 128;

/**
 * Translate `va` for an access of kind `access` at privilege `priv`.
 * Returns the physical address (may exceed 32 bits: Sv32 has 34-bit physical addresses),
 * or -1 for a page fault, or -2 when PMP forbids reading a PTE (an access fault, QEMU's
 * TRANSLATE_PMP_FAIL). A `debug` walk (HMP `x`) leaves the A and D bits alone.
 */
export function translate(cpu: Cpu, va: number, access: number, priv: number, debug = false): number {
  va = va >>> 0;
  if (priv === PRV_M || cpu.satp >>> 31 === 0) return va;

  let base = (cpu.satp & 0x3fffff) * 4096;
  const sum = (cpu.mstatus & MSTATUS_SUM) !== 0;
  const mxr = (cpu.mstatus & MSTATUS_MXR) !== 0;
  for (let level = 1; level >= 0; level--) {
    const idx = (va >>> (12 + 10 * level)) & 0x3ff;
    const pteAddr = base + idx * 4;
    const off = pteAddr - cpu.ramBase;
    if (off < 0 || off + 4 > cpu.ramSize) return -1;
    if (cpu.pmpActive && !pmpAllows(cpu, pteAddr, 4, ACCESS_LOAD, PRV_S)) return -2;
    // Postcopy: a page table that has not arrived yet is waited for like any other page.
    if (cpu.gate !== null && cpu.gate.active && !debug) cpu.gate.ensure(off);
    const pte = cpu.ram32[off >>> 2];
    const ppn = pte >>> 10;
    if ((pte & PTE_V) === 0) return -1;
    const rwx = pte & (PTE_R | PTE_W | PTE_X);
    if (rwx === 0) {
      if (level === 0) return -1;
      base = ppn * 4096;
      continue;
    }
    // Leaf. W without R is reserved.
    if (rwx === PTE_W || rwx === (PTE_W | PTE_X)) return -1;
    if ((pte & PTE_U) !== 0) {
      if (priv !== PRV_U && (!sum || access === ACCESS_FETCH)) return -1;
    } else if (priv !== PRV_S) {
      return -1;
    }
    // A level-1 leaf (4 MiB megapage) must be aligned: PPN[0] zero.
    if (level === 1 && (ppn & 0x3ff) !== 0) return -1;
    let allowed: boolean;
    if (access === ACCESS_FETCH) allowed = (pte & PTE_X) !== 0;
    else if (access === ACCESS_STORE) allowed = (pte & PTE_W) !== 0;
    else allowed = (pte & PTE_R) !== 0 || (mxr && (pte & PTE_X) !== 0);
    if (!allowed) return -1;

    const updated = pte | PTE_A | (access === ACCESS_STORE ? PTE_D : 0);
    if (updated !== pte && !debug) {
      // QEMU does a compare-and-swap on the PTE; another hart (a DMA device here) may race.
      const old = Atomics.compareExchange(cpu.ram32, off >>> 2, pte, updated);
      if (old !== pte) return translate(cpu, va, access, priv);
      // A/D updates are RAM writes like any other: migration and a code cache must see them.
      cpu.tracking.written(off, 4);
    }
    if (level === 1) return ppn * 4096 + (va & 0x3fffff);
    return ppn * 4096 + (va & 0xfff);
  }
  return -1;
}

/** True when accesses at `priv` go through Sv32 rather than straight to physical memory. */
export function translationOn(cpu: Cpu, priv: number): boolean {
  return priv !== PRV_M && cpu.satp >>> 31 !== 0;
}
