// Finding the code to translate: a *region* is every basic block reachable from an entry pc
// by direct jumps and branches without leaving the entry's 4 KiB guest page (QEMU links TBs
// only within one page for the same reason: another page's mapping can change under us).
// A region is a list of labels (block starts), each with the straight-line run of
// instructions that the compiler turns into one `case` of a switch on pc (codegen.ts).

/** What the compiler can translate; everything else ends a segment and is left to the interpreter. */
export function translatable(inst: number): boolean {
  // Compressed instructions (bits [1:0] != 3) once RVC exists: the interpreter's job here.
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

/** Instructions after which control does not simply fall through to pc + 4. */
function isTerminator(inst: number): boolean {
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
  /** Instruction words by virtual pc, for every pc some label's run covers. */
  words: Map<number, number>;
  /** Number of instructions covered. */
  insns: number;
}

/**
 * Discover the region entered at `entries` (the first is the one being compiled for; the
 * others are entries of this page seen before, so one region per page grows to hold them), reading instruction words with `word(pc)` (pc on
 * the entry's page). Returns null when the entry's own instruction is not translatable.
 */
export function discoverRegion(entries: number[], word: (pc: number) => number): Region | null {
  const entry = entries[0];
  const page = entry & ~0xfff;
  const onPage = (pc: number) => (pc & ~0xfff) === page && (pc & 3) === 0;
  if (!translatable(word(entry))) return null;
  const labels = new Set<number>([entry]);
  const words = new Map<number, number>();
  // The newest entry first, then the ones an earlier region of this page already had.
  const work = [entry];
  for (let i = entries.length - 1; i > 0; i--) {
    if (onPage(entries[i]) && !labels.has(entries[i]) && translatable(word(entries[i]))) {
      labels.add(entries[i]);
      work.unshift(entries[i]);
    }
  }
  let insns = 0;
  const addLabel = (pc: number) => {
    if (!onPage(pc) || labels.has(pc) || labels.size >= MAX_REGION_LABELS) return;
    if (!translatable(word(pc))) return;
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
      const inst = word(pc);
      if (!translatable(inst)) break;
      if (!words.has(pc)) {
        words.set(pc, inst);
        insns++;
      }
      if (isTerminator(inst)) {
        const op = inst & 0x7f;
        const rd = (inst >>> 7) & 31;
        if (op === 0x63) {
          addLabel(branchTarget(pc, inst));
          addLabel((pc + 4) | 0);
        } else if (op === 0x6f) {
          addLabel(jalTarget(pc, inst));
          // A call's return lands here: a label lets `ret` come back without the dispatcher.
          if (rd !== 0) addLabel((pc + 4) | 0);
        } else if (op === 0x67) {
          if (rd !== 0) addLabel((pc + 4) | 0);
        }
        break;
      }
      pc = (pc + 4) | 0;
    }
  }
  return { entry, labels: [...labels].sort((a, b) => a - b), words, insns };
}
