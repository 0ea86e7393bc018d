// Random RV32IMA instruction sequences for differential testing against QEMU. Each program
// sets every register to a random value, runs a body of random "units" (an instruction, or
// a short sequence that must stay together such as "load address, then access it"), and
// dumps all registers plus a checksum of its data area. Branches only go forward to unit
// boundaries, so every program terminates; memory accesses only reach the data area, the
// boot ROM or holes in the physical map, so no device is disturbed.

import { addi, auipc, C_NOP, cenc, csrrs, csrrw, enc, hiLo, jalr, li, NOP, sw } from "./rv-asm.js";

export class Rng {
  constructor(private s: number) {}
  next(): number {
    // mulberry32
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return this.next() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  reg(): number {
    return 1 + this.int(31);
  }
  value(): number {
    const special = [0, 1, -1, 0x7fffffff, 0x80000000, 0x80000001, 2, 31, 32, 0xffff, 0x8000];
    return this.int(4) === 0 ? this.pick(special) | 0 : this.next() | 0;
  }
}

export interface HarnessSymbols {
  begin: number;
  dump: number;
  finish: number;
  regs: number;
  data: number;
}

interface Unit {
  words: number[];
  /** For forward branches/jumps: index of the word to patch and the target unit. */
  fixup?: { word: number; kind: "branch" | "jal"; target: number; make: (off: number) => number };
}

const OP_RR: [number, number][] = [
  [0, 0], [0, 0x20], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [5, 0x20], [6, 0], [7, 0],
  [0, 1], [1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 1], [7, 1],
];
const AMO_F5 = [0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c];
const CSRS_RW = [0x140, 0x141, 0x142, 0x143, 0x304, 0x303, 0x302, 0x180, 0x306, 0x106, 0x341, 0x342, 0x343];
// Set/clear forms on these are harmless in M-mode (or trap); mstatus and PMP are only read.
const CSRS_RO = [0x301, 0x344, 0xf14, 0xf11, 0x100, 0x104, 0x144, 0x7c0, 0x015];
const CSRS_READ_ONLY_USE = [0x300, 0x3a0, 0x3b0, 0x310];
const HOLES = [0x00000000, 0x00000800, 0x90000000, 0x10000100, 0x00200000];
// Encodings that are illegal on QEMU's rv32 with C/F/D/H off.
const ILLEGAL = [
  0x00000000, 0xffffffff, 0x02009093, 0x4000c0b3, 0x0000b083, 0x0010b023, 0x00002063,
  0x000010e7, 0x0000200f, 0x0000302f, 0x5000202f, 0x00004073, 0x00200073, 0x00000007, 0x0000007b,
];

/** An address in the alias window: page k has permission case k (see randharness.S). */
function aliasAddress(rng: Rng, sym: HarnessSymbols, size: number): number {
  return ALIAS_BASE + rng.int(8) * 0x1000 + (sym.data & 0xfff) + dataAddress(rng, size, rng.int(4) === 0);
}

function dataAddress(rng: Rng, size: number, misaligned: boolean): number {
  let off = rng.int(256 - 8);
  if (!misaligned) off &= ~(size - 1);
  return off;
}

/** Base of the Sv32 alias window onto the data page that rand_begin maps for S/U programs. */
const ALIAS_BASE = 0x40000000;

/**
 * One random program; `pcStart` is where its first word will live. `mode` is the privilege
 * it runs in: 3 (M, physical addresses), 1 (S) or 0 (U), the latter two under Sv32.
 */
export function generateProgram(rng: Rng, sym: HarnessSymbols, pcStart: number, mode = 3, bodyUnits = 60, rvc = false): number[] {
  const units: Unit[] = [];
  const callTo = (target: number, at: number, link: number): number[] => {
    const [hi, lo] = hiLo(target - at);
    return [auipc(link, hi), jalr(link, link, lo)];
  };
  // Prologue: rand_begin (prints the marker, seeds the data area), then random registers.
  const pro: number[] = [addi(10, 0, mode)];
  pro.push(...callTo(sym.begin, pcStart + 4, 1));
  for (let r = 1; r < 32; r++) pro.push(...li(r, rng.value()));

  while (units.length < bodyUnits) {
    if (rvc && rng.int(100) < 35) {
      units.push(compressedUnit(rng, sym, units.length));
      continue;
    }
    const k = rng.int(100);
    const rd = rng.reg();
    const rs1 = rng.reg();
    const rs2 = rng.reg();
    if (k < 28) {
      const [f3, f7] = rng.pick(OP_RR);
      units.push({ words: [enc.r(0x33, f3, f7, rd, rs1, rs2)] });
    } else if (k < 46) {
      const f3 = rng.pick([0, 2, 3, 4, 6, 7, 1, 5]);
      let imm = (rng.next() << 20) >> 20;
      if (f3 === 1) imm = rng.int(32);
      if (f3 === 5) imm = rng.int(32) | (rng.int(2) ? 0x400 : 0);
      units.push({ words: [enc.i(0x13, f3, rd, rs1, imm)] });
    } else if (k < 50) {
      units.push({ words: [rng.int(2) ? enc.u(0x37, rd, rng.next()) : enc.u(0x17, rd, rng.next())] });
    } else if (k < 62) {
      // load or store: base register set to the data area (or a hole, or the boot ROM)
      const store = rng.int(2) === 0;
      const f3 = store ? rng.pick([0, 1, 2]) : rng.pick([0, 1, 2, 4, 5]);
      const size = 1 << (f3 & 3);
      const where = rng.int(20);
      let addr: number;
      if (where === 0) addr = rng.pick(HOLES);
      else if (where === 1 && !store) addr = 0x1000 + rng.int(0x40);
      else if (mode !== 3 && where < 10) addr = aliasAddress(rng, sym, size);
      else addr = sym.data + dataAddress(rng, size, rng.int(4) === 0);
      const imm = rng.int(3) === 0 ? -rng.int(64) : 0;
      const words = li(rs1, addr - imm);
      words.push(store ? enc.s(0x23, f3, rs1, rs2, imm) : enc.i(0x03, f3, rd, rs1, imm));
      units.push({ words });
    } else if (k < 70) {
      // A extension: AMOs, and LR/SC pairs that sometimes match
      const addr = mode !== 3 && rng.int(2) === 0 ? aliasAddress(rng, sym, 4) : sym.data + dataAddress(rng, 4, rng.int(8) === 0);
      const words = li(rs1, addr);
      const aqrl = rng.int(4);
      if (rng.int(3) === 0) {
        // LR's rd and the filler's rd must not clobber the address register.
        const other = () => {
          let r = rng.reg();
          while (r === rs1) r = rng.reg();
          return r;
        };
        words.push(enc.r(0x2f, 2, (0x02 << 2) | aqrl, other(), rs1, 0));
        if (rng.int(2)) words.push(enc.r(0x33, 0, 0, other(), rs2, rs2));
        words.push(enc.r(0x2f, 2, (0x03 << 2) | aqrl, rng.reg(), rs1, rs2));
      } else {
        words.push(enc.r(0x2f, 2, (rng.pick(AMO_F5) << 2) | aqrl, rd, rs1, rs2));
      }
      units.push({ words });
    } else if (k < 77) {
      const f3 = rng.pick([0, 1, 4, 5, 6, 7]);
      units.push({
        words: [0],
        fixup: { word: 0, kind: "branch", target: units.length + 1 + rng.int(6), make: (off) => enc.b(f3, rs1, rs2, off) },
      });
    } else if (k < 79) {
      units.push({ words: [0], fixup: { word: 0, kind: "jal", target: units.length + 1 + rng.int(6), make: (off) => enc.j(rd, off) } });
    } else if (k < 82) {
      // jalr forward over `skip` words, sometimes to a misaligned target (traps)
      const skip = rng.int(3);
      let imm = 8 + 4 * skip;
      const m = rng.int(5);
      // With C a +2 target is legal and lands inside the next instruction: leave it out.
      if (m === 0 && !rvc) imm += 2;
      if (m === 1) imm += 1;
      const words = [auipc(rs1, 0), jalr(rd, rs1, imm)];
      for (let i = 0; i < skip; i++) words.push(enc.i(0x13, 0, rng.reg(), rng.reg(), rng.int(100)));
      units.push({ words });
    } else if (k < 88) {
      const f3 = rng.pick([1, 2, 3, 5, 6, 7]);
      let csr = f3 === 1 || f3 === 5 || rng.int(2) ? rng.pick(CSRS_RW) : rng.pick(CSRS_RO);
      // Below M a satp write would pull the page table from under the program.
      if (mode !== 3 && csr === 0x180) csr = 0x100;
      const src = rng.int(3) === 0 ? 0 : f3 >= 5 ? rng.int(32) : rs1;
      units.push({ words: [enc.i(0x73, f3, rng.int(4) === 0 ? 0 : rd, src, csr)] });
      if (rng.int(4) === 0) units.push({ words: [enc.i(0x73, 2, rd, 0, rng.pick(CSRS_READ_ONLY_USE))] });
    } else if (k < 90) {
      units.push({ words: [rng.int(2) ? 0x00000073 : 0x00100073] });
    } else if (k < 93) {
      units.push({ words: [rng.pick(ILLEGAL)] });
    } else if (k < 95) {
      const fences = [0x0ff0000f, 0x0000100f, 0x12000073, 0x12050073];
      units.push({ words: [rng.pick(fences)] });
    } else {
      units.push({ words: [NOP] });
    }
  }

  // Lay out and resolve forward branches; targets past the end land on the epilogue.
  const starts: number[] = [];
  let pc = pcStart + pro.length * 4;
  for (const u of units) {
    starts.push(pc);
    pc += u.words.length * 4;
  }
  // S and U programs first return to M: ECALL plus the marker word.
  const exitWords = mode === 3 ? [] : [0x00000073, 0x0000000b];
  const epilogueStart = pc + exitWords.length * 4;
  for (let i = 0; i < units.length; i++) {
    const f = units[i].fixup;
    if (!f) continue;
    const target = f.target < units.length ? starts[f.target] : epilogueStart - exitWords.length * 4;
    units[i].words[f.word] = f.make(target - (starts[i] + f.word * 4));
  }
  const out = [...pro];
  for (const u of units) out.push(...u.words);
  out.push(...exitWords);

  // Epilogue: park x1 in mscratch, store x2..x31 and x1 to rand_regs, record where to
  // come back to, and jump to rand_dump.
  const epi: number[] = [];
  epi.push(csrrw(0, 0x340, 1));
  const [rhi, rlo] = hiLo(sym.regs - (epilogueStart + 4));
  epi.push(auipc(1, rhi), addi(1, 1, rlo));
  for (let r = 2; r < 32; r++) epi.push(sw(1, r, (r - 1) * 4));
  epi.push(csrrs(2, 0x340, 0), sw(1, 2, 0));
  // x2 = address after the final jalr; rand_ret = rand_regs + 128
  const here = epilogueStart + epi.length * 4;
  epi.push(auipc(2, 0), addi(2, 2, 20), sw(1, 2, 128));
  const [dhi, dlo] = hiLo(sym.dump - (here + 12));
  epi.push(auipc(3, dhi), jalr(0, 3, dlo));
  out.push(...epi);
  return out;
}

/** A legal compressed instruction that cannot trap (HINTs included). */
function compressedAlu(rng: Rng): number {
  const rp = () => 8 + rng.int(8);
  switch (rng.int(12)) {
    case 0: return cenc.ci(0, rng.int(32), rng.int(64), 1); // C.ADDI (C.NOP, HINTs)
    case 1: return cenc.ci(2, rng.int(32), rng.int(64), 1); // C.LI
    case 2: {
      let rd = rng.int(32);
      while (rd === 2) rd = rng.int(32);
      return cenc.ci(3, rd, 1 + rng.int(63), 1); // C.LUI, nzimm != 0
    }
    case 3: return cenc.addi16sp((rng.int(2) ? 1 + rng.int(31) : -1 - rng.int(32)) * 16);
    case 4: return cenc.addi4spn(rp(), (1 + rng.int(255)) * 4);
    case 5: return cenc.cbAlu(0, rp(), rng.int(32)); // C.SRLI
    case 6: return cenc.cbAlu(1, rp(), rng.int(32)); // C.SRAI
    case 7: return cenc.cbAlu(2, rp(), rng.int(64)); // C.ANDI
    case 8: return cenc.ca(rng.int(4), rp(), rp()); // C.SUB, C.XOR, C.OR, C.AND
    case 9: return cenc.ci(0, rng.int(32), rng.int(32), 2); // C.SLLI
    case 10: return cenc.cr(8, rng.int(32), 1 + rng.int(31)); // C.MV
    default: return cenc.cr(9, rng.int(32), 1 + rng.int(31)); // C.ADD
  }
}

/** Reserved or F-only 16-bit encodings, and C.EBREAK: each traps, and the handler skips 4. */
const C_TRAPS = [0x0000, 0x0010, 0x4002, 0x6101, 0x6501, 0x8002, 0x9005, 0x1512, 0x9c01, 0x6000, 0x2002, 0x8000, 0x9002];

/**
 * A unit of compressed code that keeps units 4-byte aligned: two 16-bit instructions in one
 * word, a 32-bit instruction between two C.NOPs (so it sits at pc % 4 == 2), a C.LW/C.SW or
 * C.LWSP/C.SWSP on the data area, a compressed branch or jump forward, or a trap.
 */
function compressedUnit(rng: Rng, sym: HarnessSymbols, index: number): Unit {
  const rp = () => 8 + rng.int(8);
  const k = rng.int(10);
  if (k < 5) return { words: [(compressedAlu(rng) | (compressedAlu(rng) << 16)) >>> 0] };
  if (k === 5) {
    const [f3, f7] = rng.pick(OP_RR);
    const w = enc.r(0x33, f3, f7, rng.reg(), rng.reg(), rng.reg());
    return { words: [(C_NOP | ((w & 0xffff) << 16)) >>> 0, ((w >>> 16) | (C_NOP << 16)) >>> 0] };
  }
  if (k === 6) {
    const base = rp();
    const words = li(base, sym.data + rng.int(32) * 4);
    words.push((cenc.clsw(rng.int(2) === 0, base, rp(), rng.int(32) * 4) | (C_NOP << 16)) >>> 0);
    return { words };
  }
  if (k === 7) {
    const words = li(2, sym.data + rng.int(32) * 4);
    const half = rng.int(2) === 0 ? cenc.lwsp(rng.reg(), rng.int(32) * 4) : cenc.swsp(rng.int(32), rng.int(32) * 4);
    words.push((half | (C_NOP << 16)) >>> 0);
    return { words };
  }
  if (k === 8) {
    const kind = rng.int(4);
    const rs1 = rp();
    const make = (off: number) =>
      ((kind === 0 ? cenc.cj(5, off) : kind === 1 ? cenc.cj(1, off) : cenc.cb(kind === 2 ? 6 : 7, rs1, off)) | (C_NOP << 16)) >>> 0;
    return { words: [0], fixup: { word: 0, kind: "branch", target: index + 1 + rng.int(6), make } };
  }
  return { words: [(rng.pick(C_TRAPS) | (C_NOP << 16)) >>> 0] };
}

/** A batch: `count` programs back to back, then a jump to rand_finish. */
export function generateBatch(seed: number, count: number, sym: HarnessSymbols, base: number, rvc = false): { words: number[]; starts: number[] } {
  const words: number[] = [];
  const starts: number[] = [];
  for (let i = 0; i < count; i++) {
    const pc = base + words.length * 4;
    starts.push(pc);
    const rng = new Rng((seed * 7919 + i) | 0);
    const r = rng.int(10);
    words.push(...generateProgram(rng, sym, pc, r < 5 ? 3 : r < 8 ? 1 : 0, 60, rvc));
  }
  const pc = base + words.length * 4;
  const [hi, lo] = hiLo(sym.finish - pc);
  words.push(auipc(5, hi), jalr(0, 5, lo));
  return { words, starts };
}
