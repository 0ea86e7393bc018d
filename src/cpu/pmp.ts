// Physical memory protection (privileged spec 3.7), as QEMU 7.2's target/riscv/pmp.c
// enforces it: the lowest-numbered entry that overlaps an access decides; an access only
// partly inside that entry fails; M-mode is exempt from unlocked entries and from "no
// match"; S and U get nothing that no entry grants, and nothing at all while no entry is
// active. Checked on the slow paths only: the soft TLB caches a page just when one entry
// covers it entirely (QEMU's pmp_is_range_in_tlb), so later hits need no check.

import { ACCESS_FETCH, ACCESS_STORE, PRV_M } from "./constants.js";
import type { Cpu } from "./cpu.js";

const PMP_R = 1;
const PMP_W = 2;
const PMP_X = 4;
const PMP_A_SHIFT = 3;
const PMP_L = 0x80;
const A_OFF = 0;
const A_TOR = 1;
const A_NA4 = 2;

function cfgOf(cpu: Cpu, i: number): number {
  return (cpu.pmpcfg[i >>> 2] >>> (8 * (i & 3))) & 0xff;
}

/** Recompute the summary flags the slow paths test before walking the entries. */
export function pmpUpdate(cpu: Cpu): void {
  let active = false;
  let locked = false;
  let n = 0;
  for (let i = 0; i < 16; i++) {
    const c = cfgOf(cpu, i);
    if (((c >>> PMP_A_SHIFT) & 3) !== A_OFF) {
      active = true;
      if (c & PMP_L) locked = true;
    }
    if (rangeOf(cpu, i)) {
      cpu.pmpStart[n] = rangeStart;
      cpu.pmpEnd[n] = rangeEnd;
      cpu.pmpCfgOn[n] = c;
      n++;
    }
  }
  cpu.pmpActive = active;
  cpu.pmpLocked = locked;
  cpu.pmpCount = n;
  cpu.flushTlb();
}

// rangeOf()'s result, in two scratch numbers rather than a fresh array.
let rangeStart = 0;
let rangeEnd = 0;

/** Set [rangeStart, rangeEnd] (inclusive, physical) to entry i; false when it is off. */
function rangeOf(cpu: Cpu, i: number): boolean {
  const c = cfgOf(cpu, i);
  const a = (c >>> PMP_A_SHIFT) & 3;
  const addr = cpu.pmpaddr[i];
  if (a === A_OFF) return false;
  if (a === A_TOR) {
    rangeStart = i === 0 ? 0 : cpu.pmpaddr[i - 1] * 4;
    rangeEnd = addr * 4 - 1;
    return true;
  }
  if (a === A_NA4) {
    rangeStart = addr * 4;
    rangeEnd = addr * 4 + 3;
    return true;
  }
  // NAPOT: the trailing ones of pmpaddr give the size, 2^(ones + 3) bytes.
  const lowestZero = ~addr & (addr + 1);
  const ones = lowestZero === 0 ? 32 : 31 - Math.clz32(lowestZero);
  const size = 2 ** (ones + 3);
  rangeStart = Math.floor((addr * 4) / size) * size;
  rangeEnd = rangeStart + size - 1;
  return true;
}

/** May an access of `size` bytes at physical `pa` of kind `access` happen at `priv`? */
export function pmpAllows(cpu: Cpu, pa: number, size: number, access: number, priv: number): boolean {
  if (priv === PRV_M && !cpu.pmpLocked) return true;
  if (!cpu.pmpActive) return priv === PRV_M;
  const last = pa + size - 1;
  const starts = cpu.pmpStart;
  const ends = cpu.pmpEnd;
  for (let i = 0; i < cpu.pmpCount; i++) {
    const s = starts[i];
    const e = ends[i];
    const startIn = pa >= s && pa <= e;
    const endIn = last >= s && last <= e;
    if (!startIn && !endIn) {
      if (pa < s && last > e) return false; // straddles the whole entry
      continue;
    }
    if (!startIn || !endIn) return false;
    const c = cpu.pmpCfgOn[i];
    if (priv === PRV_M && (c & PMP_L) === 0) return true;
    const need = access === ACCESS_FETCH ? PMP_X : access === ACCESS_STORE ? PMP_W : PMP_R;
    return (c & need) !== 0;
  }
  return priv === PRV_M;
}

/** Can the 4 KiB page holding `pa` be cached for this access (one verdict for all of it)? */
export function pmpPageCacheable(cpu: Cpu, pa: number, access: number, priv: number): boolean {
  if (priv === PRV_M && !cpu.pmpLocked) return true;
  return pmpAllows(cpu, pa - (pa % 4096), 4096, access, priv);
}
