// The slow paths of guest memory access: TLB misses, misaligned and page-crossing accesses,
// MMIO, and the A extension (LR/SC, AMOs). Behaviour follows QEMU 7.2 TCG: plain loads and
// stores may be misaligned (no trap); LR/SC/AMOs must be aligned (cause 4
// for all three, as QEMU 7.2 reports it); an SC whose reservation does not match fails without touching memory; a
// successful-looking SC also fails when memory no longer holds what LR read.

import {
  ACCESS_FETCH,
  ACCESS_LOAD,
  ACCESS_STORE,
  EXC_ILLEGAL_INST,
  EXC_INST_ACCESS,
  EXC_INST_PAGE_FAULT,
  EXC_LOAD_ACCESS,
  EXC_LOAD_MISALIGNED,
  EXC_LOAD_PAGE_FAULT,
  EXC_STORE_ACCESS,
  EXC_STORE_PAGE_FAULT,
  PRV_M,
  TLB_SIZE,
} from "./constants.js";
import type { Cpu } from "./cpu.js";
import { translate } from "./mmu.js";
import { pmpAllows, pmpPageCacheable } from "./pmp.js";
import { raiseException } from "./trap.js";

const TLB_MASK = TLB_SIZE - 1;

/**
 * Postcopy: wait, holding whatever this thread holds (the BQL), until RAM offset `off`'s page
 * has arrived. Every RAM access that misses the TLBs comes through here first, so a page enters
 * a TLB only once it is present; a no-op unless this machine is a postcopy destination.
 */
export function awaitPage(cpu: Cpu, off: number): void {
  const g = cpu.gate;
  if (g !== null && g.active) g.ensure(off);
}

const PAGE_FAULT = [EXC_INST_PAGE_FAULT, EXC_LOAD_PAGE_FAULT, EXC_STORE_PAGE_FAULT];
const ACCESS_FAULT = [EXC_INST_ACCESS, EXC_LOAD_ACCESS, EXC_STORE_ACCESS];

/**
 * Translate `va` and check PMP for `size` bytes. Returns the physical address, or -1 after
 * raising the page fault or access fault (with `tval`) that QEMU would raise.
 */
function translateChecked(cpu: Cpu, va: number, access: number, priv: number, size: number, tval: number, pc: number): number {
  const pa = translate(cpu, va, access, priv);
  if (pa === -1) {
    cpu.pc = raiseException(cpu, PAGE_FAULT[access], tval, pc);
    return -1;
  }
  if (pa === -2 || ((cpu.pmpActive || priv !== PRV_M) && !pmpAllows(cpu, pa, size, access, priv))) {
    cpu.pc = raiseException(cpu, ACCESS_FAULT[access], tval, pc);
    return -1;
  }
  return pa;
}

/**
 * Instruction fetch miss. Returns 1 when `pc`'s page is now in the fetch TLB (RAM), 2 when the
 * instruction was read from a device into `cpu.fetched` (boot ROM), 0 after raising a trap.
 */
export function fetchSlow(cpu: Cpu, pc: number): number {
  const pa = translateChecked(cpu, pc, ACCESS_FETCH, cpu.priv, 4 - (pc & 2), pc, pc);
  if (pa < 0) return 0;
  const off = pa - cpu.ramBase;
  if (off >= 0 && off < cpu.ramSize) {
    awaitPage(cpu, off);
    if (!pmpPageCacheable(cpu, pa, ACCESS_FETCH, cpu.priv)) {
      if ((off & 2) === 0) {
        cpu.fetched = cpu.ram32[off >>> 2];
        return 2;
      }
      return fetchedUnaligned(cpu, pc, cpu.ram16[off >>> 1]);
    }
    const vpn = pc >>> 12;
    const i = vpn & TLB_MASK;
    cpu.tlbXTag[i] = vpn | (cpu.priv << 20);
    cpu.tlbXOff[i] = off - (off & 0xfff);
    return 1;
  }
  const v = pa < 0x100000000 ? cpu.bus.fetch(pa) : 0;
  if (pa >= 0x100000000 || cpu.bus.fault) {
    cpu.bus.fault = false;
    cpu.pc = raiseException(cpu, EXC_INST_ACCESS, pc, pc);
    return 0;
  }
  if ((pc & 0xfff) === 0xffe) return fetchedUnaligned(cpu, pc, v & 0xffff);
  cpu.fetched = v | 0;
  return 2;
}

/** fetchSlow's result for the low half `lo` at pc % 4 == 2: the upper half added if needed. */
function fetchedUnaligned(cpu: Cpu, pc: number, lo: number): number {
  if ((lo & 3) !== 3) {
    cpu.fetched = lo;
    return 2;
  }
  if ((pc & 0xfff) !== 0xffe) {
    // Same page, so the same translation and PMP answer: read on from RAM or the device.
    const hi = fetchHalf(cpu, pc + 2, pc);
    if (hi < 0) return 0;
    cpu.fetched = lo | (hi << 16);
    return 2;
  }
  const hi = fetchHigh(cpu, pc);
  if (hi < 0) return 0;
  cpu.fetched = lo | (hi << 16);
  return 2;
}

/**
 * The upper half of a 32-bit instruction at `pc` whose lower half ends a page: the next page
 * is translated on its own, and a fault there is reported as QEMU 7.2 reports it (epc = pc,
 * tval = the address on the second page). Returns the 16 bits, or -1 after raising the trap.
 */
export function fetchHigh(cpu: Cpu, pc: number): number {
  return fetchHalf(cpu, (pc + 2) | 0, pc);
}

function fetchHalf(cpu: Cpu, va: number, pc: number): number {
  const pa = translateChecked(cpu, va, ACCESS_FETCH, cpu.priv, 2, va, pc);
  if (pa < 0) return -1;
  const off = pa - cpu.ramBase;
  if (off >= 0 && off < cpu.ramSize) return cpu.ram16[off >>> 1];
  const v = pa < 0x100000000 ? cpu.bus.fetch(pa & ~3) : 0;
  if (pa >= 0x100000000 || cpu.bus.fault) {
    cpu.bus.fault = false;
    cpu.pc = raiseException(cpu, EXC_INST_ACCESS, va, pc);
    return -1;
  }
  return (pa & 2) === 0 ? v & 0xffff : v >>> 16;
}

/** Physical byte read; -1 on a hole. */
function physLoad8(cpu: Cpu, pa: number): number {
  const off = pa - cpu.ramBase;
  if (off >= 0 && off < cpu.ramSize) {
    awaitPage(cpu, off);
    return cpu.ram8[off];
  }
  if (pa >= 0x100000000) return -1;
  cpu.mmioTouched = true;
  const v = cpu.bus.load(pa, 1);
  if (cpu.bus.fault) {
    cpu.bus.fault = false;
    return -1;
  }
  return v & 0xff;
}

function physStore8(cpu: Cpu, pa: number, v: number): boolean {
  const off = pa - cpu.ramBase;
  if (off >= 0 && off < cpu.ramSize) {
    awaitPage(cpu, off);
    cpu.ram8[off] = v;
    cpu.tracking.written(off, 1);
    if (off >>> 12 === cpu.htifPage) cpu.bus.htifStore(pa);
    return true;
  }
  if (pa >= 0x100000000) return false;
  cpu.mmioTouched = true;
  cpu.bus.store(pa, 1, v & 0xff);
  if (cpu.bus.fault) {
    cpu.bus.fault = false;
    return false;
  }
  return true;
}

function extend(v: number, f3: number): number {
  switch (f3) {
    case 0: return (v << 24) >> 24;
    case 1: return (v << 16) >> 16;
    case 4: return v & 0xff;
    case 5: return v & 0xffff;
    default: return v | 0;
  }
}

/**
 * A load that missed the read TLB or is misaligned. Returns the (extended) value, or null
 * after raising a trap (cpu.pc then holds the handler address).
 */
export function loadSlow(cpu: Cpu, a: number, f3: number, pc: number): number | null {
  const size = 1 << (f3 & 3);
  const priv = cpu.dataPriv();
  const pageLeft = 4096 - (a & 0xfff);
  const pa = translateChecked(cpu, a, ACCESS_LOAD, priv, pageLeft < size ? pageLeft : size, a, pc);
  if (pa < 0) return null;
  if ((a & (size - 1)) === 0) {
    const off = pa - cpu.ramBase;
    if (off >= 0 && off + size <= cpu.ramSize) {
      awaitPage(cpu, off);
      if (pmpPageCacheable(cpu, pa, ACCESS_LOAD, priv)) {
        const vpn = a >>> 12;
        const i = vpn & TLB_MASK;
        cpu.tlbRTag[i] = vpn | (priv << 20);
        cpu.tlbROff[i] = off - (off & 0xfff);
      }
      let v: number;
      if (size === 4) v = cpu.ram32[off >>> 2];
      else if (size === 2) v = cpu.ram16[off >>> 1];
      else v = cpu.ram8[off];
      return extend(v, f3);
    }
    if (pa >= 0x100000000) {
      cpu.pc = raiseException(cpu, EXC_LOAD_ACCESS, a, pc);
      return null;
    }
    cpu.mmioTouched = true;
    const v = cpu.bus.load(pa, size as 1 | 2 | 4);
    if (cpu.bus.fault) {
      cpu.bus.fault = false;
      cpu.pc = raiseException(cpu, EXC_LOAD_ACCESS, a, pc);
      return null;
    }
    return extend(v, f3);
  }
  // Misaligned: QEMU 7.2 performs it. A page-crossing access translates the second page at
  // the naturally aligned address after `a` (cputlb's load_helper), which is what it reports.
  const a1 = (a & ~(size - 1)) | 0;
  const mmioOff = pa - cpu.ramBase;
  if ((mmioOff < 0 || mmioOff >= cpu.ramSize) && pageLeft >= size) {
    // A misaligned device access is two aligned accesses of the same size (load_helper's
    // do_unaligned_access); a failing half reports its own aligned address.
    const pa1 = pa - (a - a1);
    const lo = pa1 < 0x100000000 ? cpu.bus.load(pa1, size as 1 | 2 | 4) : 0;
    if (pa1 >= 0x100000000 || cpu.bus.fault) {
      cpu.bus.fault = false;
      cpu.pc = raiseException(cpu, EXC_LOAD_ACCESS, a1, pc);
      return null;
    }
    const hi = pa1 + size < 0x100000000 ? cpu.bus.load(pa1 + size, size as 1 | 2 | 4) : 0;
    if (pa1 + size >= 0x100000000 || cpu.bus.fault) {
      cpu.bus.fault = false;
      cpu.pc = raiseException(cpu, EXC_LOAD_ACCESS, (a1 + size) | 0, pc);
      return null;
    }
    cpu.mmioTouched = true;
    const shift = 8 * (a - a1);
    const v = size === 4 ? (lo >>> shift) | (hi << (32 - shift)) : ((lo >>> shift) | (hi << (8 * size - shift))) & 0xffff;
    return extend(v, f3);
  }
  let pa2 = -1;
  const a2 = ((a & ~(size - 1)) + size) | 0;
  if (pageLeft < size) {
    pa2 = translateChecked(cpu, a2, ACCESS_LOAD, priv, size - pageLeft, a2, pc);
    if (pa2 < 0) return null;
    pa2 -= a2 & 0xfff;
  }
  let v = 0;
  for (let k = 0; k < size; k++) {
    const b = k < pageLeft ? physLoad8(cpu, pa + k) : physLoad8(cpu, pa2 + k - pageLeft);
    if (b < 0) {
      cpu.pc = raiseException(cpu, EXC_LOAD_ACCESS, a, pc);
      return null;
    }
    v |= b << (8 * k);
  }
  return extend(v, f3);
}

/** A store that missed the write TLB or is misaligned. False after raising a trap. */
export function storeSlow(cpu: Cpu, a: number, f3: number, v: number, pc: number): boolean {
  const size = 1 << f3;
  const priv = cpu.dataPriv();
  const pageLeft = 4096 - (a & 0xfff);
  const pa = translateChecked(cpu, a, ACCESS_STORE, priv, pageLeft < size ? pageLeft : size, a, pc);
  if (pa < 0) return false;
  if ((a & (size - 1)) === 0) {
    const off = pa - cpu.ramBase;
    if (off >= 0 && off + size <= cpu.ramSize) {
      awaitPage(cpu, off);
      const page = off >>> 12;
      // HTIF's page and watched pages stay out of the write TLB: their stores need this path.
      if (page !== cpu.htifPage && (cpu.watched[page >>> 5] & (1 << (page & 31))) === 0 && pmpPageCacheable(cpu, pa, ACCESS_STORE, priv)) {
        const vpn = a >>> 12;
        const i = vpn & TLB_MASK;
        cpu.tlbWTag[i] = vpn | (priv << 20);
        cpu.tlbWOff[i] = off - (off & 0xfff);
      }
      if (size === 4) cpu.ram32[off >>> 2] = v;
      else if (size === 2) cpu.ram16[off >>> 1] = v;
      else cpu.ram8[off] = v;
      cpu.tracking.written(off, size);
      if (off >>> 12 === cpu.htifPage) cpu.bus.htifStore(pa);
      return true;
    }
    if (pa >= 0x100000000) {
      cpu.pc = raiseException(cpu, EXC_STORE_ACCESS, a, pc);
      return false;
    }
    cpu.mmioTouched = true;
    cpu.bus.store(pa, size as 1 | 2 | 4, size === 4 ? v >>> 0 : v & ((1 << (8 * size)) - 1));
    if (cpu.bus.fault) {
      cpu.bus.fault = false;
      cpu.pc = raiseException(cpu, EXC_STORE_ACCESS, a, pc);
      return false;
    }
    return true;
  }
  // Misaligned store: QEMU probes the second page (at its start) before writing anything.
  let pa2 = -1;
  if (pageLeft < size) {
    const page2 = ((a & ~0xfff) + 4096) | 0;
    pa2 = translateChecked(cpu, page2, ACCESS_STORE, priv, size - pageLeft, page2, pc);
    if (pa2 < 0) return false;
  }
  for (let k = 0; k < size; k++) {
    const ok = k < pageLeft ? physStore8(cpu, pa + k, v >>> (8 * k)) : physStore8(cpu, pa2 + k - pageLeft, v >>> (8 * k));
    if (!ok) {
      // QEMU stores a misaligned value byte by byte; the failing byte's address is reported.
      cpu.pc = raiseException(cpu, EXC_STORE_ACCESS, (a + k) | 0, pc);
      return false;
    }
  }
  return true;
}

/** Read-modify-write helpers for the A extension on an already translated, aligned word. */
function physRead32(cpu: Cpu, pa: number): number | null {
  const off = pa - cpu.ramBase;
  if (off >= 0 && off + 4 <= cpu.ramSize) {
    awaitPage(cpu, off);
    return cpu.ram32[off >>> 2];
  }
  if (pa >= 0x100000000) return null;
  cpu.mmioTouched = true;
  const v = cpu.bus.load(pa, 4);
  if (cpu.bus.fault) {
    cpu.bus.fault = false;
    return null;
  }
  return v | 0;
}

function physWrite32(cpu: Cpu, pa: number, v: number): boolean {
  const off = pa - cpu.ramBase;
  if (off >= 0 && off + 4 <= cpu.ramSize) {
    awaitPage(cpu, off);
    cpu.ram32[off >>> 2] = v;
    cpu.tracking.written(off, 4);
    if (off >>> 12 === cpu.htifPage) cpu.bus.htifStore(pa);
    return true;
  }
  if (pa >= 0x100000000) return false;
  cpu.mmioTouched = true;
  cpu.bus.store(pa, 4, v >>> 0);
  if (cpu.bus.fault) {
    cpu.bus.fault = false;
    return false;
  }
  return true;
}

/** Execute one A-extension instruction. False after raising a trap (cpu.pc = handler). */
export function amoInstruction(cpu: Cpu, inst: number, pc: number): boolean {
  const x = cpu.x;
  const rd = (inst >>> 7) & 31;
  const rs1 = (inst >>> 15) & 31;
  const rs2 = (inst >>> 20) & 31;
  const f5 = inst >>> 27;
  if (((inst >>> 12) & 7) !== 2) return illegal(cpu, inst, pc);
  const a = x[rs1];
  const priv = cpu.dataPriv();

  if (f5 === 0x02) {
    // LR.W
    if (rs2 !== 0) return illegal(cpu, inst, pc);
    if ((a & 3) !== 0) {
      cpu.pc = raiseException(cpu, EXC_LOAD_MISALIGNED, a, pc);
      return false;
    }
    const pa = translateChecked(cpu, a, ACCESS_LOAD, priv, 4, a, pc);
    if (pa < 0) return false;
    const v = physRead32(cpu, pa);
    if (v === null) {
      cpu.pc = raiseException(cpu, EXC_LOAD_ACCESS, a, pc);
      return false;
    }
    cpu.loadRes = a;
    cpu.loadVal = v;
    x[rd] = v;
    return true;
  }

  const src = x[rs2];
  if (f5 === 0x03) {
    // SC.W: a reservation for another address fails before any memory access.
    if (cpu.loadRes !== a) {
      cpu.loadRes = -1;
      x[rd] = 1;
      return true;
    }
  } else if (!isAmo(f5)) {
    return illegal(cpu, inst, pc);
  }
  // QEMU 7.2's atomic_mmu_lookup checks alignment as a load: a misaligned AMO or SC
  // raises cause 4 (load address misaligned), not 6.
  if ((a & 3) !== 0) {
    cpu.pc = raiseException(cpu, EXC_LOAD_MISALIGNED, a, pc);
    return false;
  }
  // QEMU probes an atomic's page for reading first (a page that cannot be read gives a
  // load page fault), then for writing (store/AMO page fault).
  if (translateChecked(cpu, a, ACCESS_LOAD, priv, 4, a, pc) < 0) return false;
  const pa = translateChecked(cpu, a, ACCESS_STORE, priv, 4, a, pc);
  if (pa < 0) return false;
  const old = physRead32(cpu, pa);
  if (old === null) {
    cpu.pc = raiseException(cpu, EXC_STORE_ACCESS, a, pc);
    return false;
  }
  if (f5 === 0x03) {
    cpu.loadRes = -1;
    if (old !== cpu.loadVal) {
      x[rd] = 1;
      return true;
    }
    if (!physWrite32(cpu, pa, src)) {
      cpu.pc = raiseException(cpu, EXC_STORE_ACCESS, a, pc);
      return false;
    }
    x[rd] = 0;
    return true;
  }
  let nv: number;
  switch (f5) {
    case 0x01: nv = src; break;
    case 0x00: nv = (old + src) | 0; break;
    case 0x04: nv = old ^ src; break;
    case 0x0c: nv = old & src; break;
    case 0x08: nv = old | src; break;
    case 0x10: nv = old < src ? old : src; break;
    case 0x14: nv = old > src ? old : src; break;
    case 0x18: nv = old >>> 0 < src >>> 0 ? old : src; break;
    default: nv = old >>> 0 > src >>> 0 ? old : src; break;
  }
  if (!physWrite32(cpu, pa, nv)) {
    cpu.pc = raiseException(cpu, EXC_STORE_ACCESS, a, pc);
    return false;
  }
  x[rd] = old;
  return true;
}

function isAmo(f5: number): boolean {
  return f5 === 0x01 || f5 === 0x00 || f5 === 0x04 || f5 === 0x0c || f5 === 0x08 ||
    f5 === 0x10 || f5 === 0x14 || f5 === 0x18 || f5 === 0x1c;
}

function illegal(cpu: Cpu, inst: number, pc: number): boolean {
  cpu.pc = raiseException(cpu, EXC_ILLEGAL_INST, inst, pc);
  return false;
}
