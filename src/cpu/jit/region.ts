// Finding the code to translate: a *region* is every basic block reachable from an entry pc
// by direct jumps and branches without leaving the entry's 4 KiB guest page (QEMU links TBs
// only within one page for the same reason: another page's mapping can change under us).
// A region is a list of labels (block starts), each with the straight-line run of
// instructions that the compiler turns into one `case` of a switch on pc (codegen.ts).
// With the C extension instructions are 2 or 4 bytes long and start at any even pc: a 16-bit
// one is expanded (rvc.ts) to the 32-bit instruction it stands for, and translated as that
// with a length of 2 (pc + 2 is its fall-through and its link value). A 32-bit instruction
// whose upper half lies on the next page is left to the interpreter, which fetches it there.

import { expandCompressed } from "../rvc.js";

/** What the compiler can translate (a 32-bit word); everything else ends a segment and is left to the interpreter. */
export function translatable(inst: number): boolean {
  // A 16-bit parcel is expanded by decodeAt() before it gets here.
  if ((inst & 3) !== 3) return false;
  const f3 = (inst >>> 12) & 7;
  const f7 = inst >>> 25;
  switch (inst & 0x7f) {
    case 0x37: case 0x17: case 0x6f:
      return true;
    case 0x67:
      return f3 === 0;
    case 0x63:
      return f3 !== 2 && f3 !== 3;
    case 0x03:
      return f3 !== 3 && f3 < 6;
    case 0x23:
      return f3 < 3;
    case 0x13:
      if (f3 === 1) return f7 === 0;
      if (f3 === 5) return f7 === 0 || f7 === 0x20;
      return true;
    case 0x33:
      if (f7 === 0 || f7 === 1) return true;
      return f7 === 0x20 && (f3 === 0 || f3 === 5);
    case 0x0f:
      return f3 === 0 || f3 === 1;
    case 0x2f:
      // LR/SC/AMOs go through memory.ts's amoInstruction, which does all the checking.
      return f3 === 2;
    default:
      // SYSTEM (CSRs, ECALL, xRET, WFI, SFENCE.VMA) and anything unknown: interpreter.
      return false;
  }
}

/** Reads the 16-bit parcel at an even address of the page being translated. */
export type HalfReader = (pc: number) => number;

/** One decoded instruction: its 32-bit form (a compressed one expanded) and its length in bytes. */
export interface Decoded {
  inst: number;
  len: 2 | 4;
}

/**
 * The instruction at `pc` as the interpreter runs it, or null when the compiler leaves it to
 * the interpreter: not translatable, an illegal or (without C) any 16-bit parcel, or a 32-bit
 * instruction that straddles the end of the page.
 */
export function decodeAt(pc: number, half: HalfReader, rvc: boolean): Decoded | null {
  const lo = half(pc);
  if ((lo & 3) !== 3) {
    if (!rvc) return null;
    const inst = expandCompressed(lo);
    return inst !== 0 && translatable(inst) ? { inst, len: 2 } : null;
  }
  if ((pc & 0xfff) === 0xffe) return null;
  const inst = lo | (half((pc + 2) | 0) << 16);
  return translatable(inst) ? { inst, len: 4 } : null;
}

/** Instructions after which control does not simply fall through to the next one. */
export function isTerminator(inst: number): boolean {
  const op = inst & 0x7f;
  return op === 0x6f || op === 0x67 || op === 0x63 || (op === 0x0f && ((inst >>> 12) & 7) === 1);
}

export function branchTarget(pc: number, inst: number): number {
  const imm = ((inst >> 31) << 12) | (((inst >>> 7) & 1) << 11) | (((inst >>> 25) & 0x3f) << 5) | (((inst >>> 8) & 0xf) << 1);
  return (pc + imm) | 0;
}

export function jalTarget(pc: number, inst: number): number {
  const imm = ((inst >> 31) << 20) | (inst & 0xff000) | (((inst >>> 20) & 1) << 11) | (((inst >>> 21) & 0x3ff) << 1);
  return (pc + imm) | 0;
}

/** Longest straight-line run in one case (a longer run is split with a fall-through label). */
export const MAX_SEGMENT = 64;
/** Bounds on one region, so that a generated function stays far below V8's 60 KB limit. */
export const MAX_REGION_INSNS = 512;
export const MAX_REGION_LABELS = 160;

export interface Region {
  /** Virtual pc of the entry (signed 32-bit, as the interpreter keeps pc). */
  entry: number;
  /** Block starts in address order; the entry is among them. */
  labels: number[];
  /** Instruction words by virtual pc, for every pc some label's run covers (compressed ones expanded). */
  words: Map<number, number>;
  /** Their lengths in bytes (2 for a compressed instruction, 4 otherwise). */
  lengths: Map<number, number>;
  /** Number of instructions covered. */
  insns: number;
}

/**
 * Discover the region entered at `entries` (the first is the one being compiled for; the
 * others are entries of this page seen before, so one region per page grows to hold them),
 * reading 16-bit parcels with `half(pc)` (pc on the entry's page); `rvc` is misa.C. Only
 * block starts for which `seen(pc)` holds become labels (the engine passes "the dispatcher
 * has run it"): a jump to code never run leaves the region, which stays small, quick for V8
 * to parse and optimize, until that code gets hot and the page's region is regenerated.
 * Returns null when the entry's own instruction is not translatable.
 */
export function discoverRegion(entries: number[], half: HalfReader, rvc: boolean, seen: (pc: number) => boolean = () => true): Region | null {
  const entry = entries[0];
  const page = entry & ~0xfff;
  const align = rvc ? 1 : 3;
  const onPage = (pc: number) => (pc & ~0xfff) === page && (pc & align) === 0;
  const decode = (pc: number) => decodeAt(pc, half, rvc);
  if (!onPage(entry) || decode(entry) === null) return null;
  const labels = new Set<number>([entry]);
  const words = new Map<number, number>();
  const lengths = new Map<number, number>();
  // The newest entry first, then the ones an earlier region of this page already had.
  const work = [entry];
  for (let i = entries.length - 1; i > 0; i--) {
    if (onPage(entries[i]) && !labels.has(entries[i]) && decode(entries[i]) !== null) {
      labels.add(entries[i]);
      work.unshift(entries[i]);
    }
  }
  let insns = 0;
  const addLabel = (pc: number) => {
    if (!onPage(pc) || labels.has(pc) || labels.size >= MAX_REGION_LABELS || !seen(pc)) return;
    if (decode(pc) === null) return;
    labels.add(pc);
    work.push(pc);
  };
  while (work.length > 0 && insns < MAX_REGION_INSNS) {
    let pc = work.pop() as number;
    if (words.has(pc)) continue;
    for (let k = 0; ; k++) {
      if (k > 0 && labels.has(pc)) break;
      if (!onPage(pc)) break;
      if (k === MAX_SEGMENT) {
        addLabel(pc);
        break;
      }
      const d = decode(pc);
      if (d === null) break;
      const { inst, len } = d;
      if (!words.has(pc)) {
        words.set(pc, inst);
        lengths.set(pc, len);
        insns++;
      }
      if (isTerminator(inst)) {
        const op = inst & 0x7f;
        const rd = (inst >>> 7) & 31;
        if (op === 0x63) {
          addLabel(branchTarget(pc, inst));
          addLabel((pc + len) | 0);
        } else if (op === 0x6f) {
          addLabel(jalTarget(pc, inst));
          // A call's return lands here: a label lets `ret` come back without the dispatcher.
          if (rd !== 0) addLabel((pc + len) | 0);
        } else if (op === 0x67) {
          if (rd !== 0) addLabel((pc + len) | 0);
        }
        break;
      }
      pc = (pc + len) | 0;
    }
  }
  return { entry, labels: [...labels].sort((a, b) => a - b), words, lengths, insns };
}
