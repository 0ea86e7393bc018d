// Random bare-metal programs for testing the block compiler (compiler.test.ts): a prologue
// that sets every register, a loop around a random body (straight-line code with loads,
// stores, AMOs, optional faulting instructions and self-modifying code), a trap handler
// that logs mcause/mepc/mtval/minstret below x8 and skips the trapping instruction (or
// clears the CLINT's msip for a software interrupt), and an exit through the finisher.

import { Machine } from "../../../src/core/machine.js";
import type { Accel } from "../../../src/cpu/jit/accel.js";
import { saveCpuState } from "../../../src/cpu/state.js";
import { writeElf } from "../elf-writer.js";
import { Rng } from "../random-program.js";
import { addi, auipc, C_NOP, cenc, csrrs, csrrw, enc, li, sw } from "../rv-asm.js";

const BASE = 0x80000000;
/** x8 points here: random accesses go to [x8, x8 + 2048), the trap log to [x8 - 2048, x8). */
const DATA = 0x80010800;
const CLINT_MSIP = 0x2000000;
const FINISHER = 0x100000;

const CSR = { mstatus: 0x300, mie: 0x304, mtvec: 0x305, mepc: 0x341, mcause: 0x342, mtval: 0x343, minstret: 0xb02 };
const lw = (rd: number, rs1: number, imm: number) => enc.i(0x03, 2, rd, rs1, imm);
const add = (rd: number, rs1: number, rs2: number) => enc.r(0x33, 0, 0, rd, rs1, rs2);
const or = (rd: number, rs1: number, rs2: number) => enc.r(0x33, 6, 0, rd, rs1, rs2);
const slli = (rd: number, rs1: number, sh: number) => enc.i(0x13, 1, rd, rs1, sh);
const andi = (rd: number, rs1: number, imm: number) => enc.i(0x13, 7, rd, rs1, imm);
const bnez = (rs1: number, off: number) => enc.b(1, rs1, 0, off);
const blt = (rs1: number, rs2: number, off: number) => enc.b(4, rs1, rs2, off);
const MRET = 0x30200073;
const ECALL = 0x00000073;
const FENCE_I = 0x0000100f;

// Registers the random code may write; the others belong to the harness: x1-x3 the trap
// handler, x8/x9 the data pointers, x4 a misaligned pointer, x27-x30 self-modification
// (x27 accumulates what the rewritten instruction adds),
// x31 the loop counter.
const FREE = [0, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26];
const SRC = [0, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 31];

/** One random instruction that neither jumps nor faults (misaligned accesses are allowed). */
export function randomInsn(r: Rng): number[] {
  const rd = r.pick(FREE);
  const a = r.pick(SRC);
  const b = r.pick(SRC);
  switch (r.int(12)) {
    case 0: case 1: case 2: {
      const f3 = r.int(8);
      const f7 = f3 === 0 || f3 === 5 ? r.pick([0, 0x20]) : 0;
      return [enc.r(0x33, f3, f7, rd, a, b)];
    }
    case 3:
      return [enc.r(0x33, r.int(8), 1, rd, a, b)];
    case 4: case 5: {
      const f3 = r.pick([0, 2, 3, 4, 6, 7, 1, 5]);
      if (f3 === 1) return [enc.i(0x13, 1, rd, a, r.int(32))];
      if (f3 === 5) return [enc.i(0x13, 5, rd, a, r.int(32) | (r.int(2) << 10))];
      return [enc.i(0x13, f3, rd, a, (r.next() << 20) >> 20)];
    }
    case 6:
      return [r.int(2) ? enc.u(0x37, rd, r.next() & 0xfffff) : auipc(rd, r.next() & 0xfffff)];
    case 7: case 8:
      return [enc.i(0x03, r.pick([0, 1, 2, 4, 5]), rd, 8, r.int(2040))];
    case 9: case 10:
      return [enc.s(0x23, r.int(3), 8, b, r.int(2040))];
    default: {
      // An AMO on the aligned word at x9, or an LR/SC pair.
      if (r.int(3) === 0) return [enc.r(0x2f, 2, 0x02 << 2, rd, 9, 0), enc.r(0x2f, 2, 0x03 << 2, r.pick(FREE), 9, b)];
      return [enc.r(0x2f, 2, r.pick([0x00, 0x01, 0x04, 0x0c, 0x08, 0x10, 0x14, 0x18, 0x1c]) << 2, rd, 9, b)];
    }
  }
}

/** Registers of FREE that the 3-bit fields of compressed instructions can name (x8..x15). */
const FREE_C = [10, 11, 12, 13, 14, 15];

/** A compressed instruction that neither jumps nor faults and writes only FREE registers. */
function compressedAlu(r: Rng): number {
  const rd = r.pick(FREE.slice(1));
  const rp = () => r.pick(FREE_C);
  switch (r.int(11)) {
    case 0: return cenc.ci(0, rd, r.int(64), 1); // C.ADDI
    case 1: return cenc.ci(2, rd, r.int(64), 1); // C.LI
    case 2: return cenc.ci(3, rd, 1 + r.int(63), 1); // C.LUI
    case 3: return cenc.cbAlu(0, rp(), r.int(32)); // C.SRLI
    case 4: return cenc.cbAlu(1, rp(), r.int(32)); // C.SRAI
    case 5: return cenc.cbAlu(2, rp(), r.int(64)); // C.ANDI
    case 6: return cenc.ca(r.int(4), rp(), rp()); // C.SUB, C.XOR, C.OR, C.AND
    case 7: return cenc.ci(0, rd, r.int(32), 2); // C.SLLI
    case 8: return cenc.cr(8, rd, r.pick(SRC.slice(1))); // C.MV
    case 9: return cenc.cr(9, rd, r.pick(SRC.slice(1))); // C.ADD
    default: return C_NOP;
  }
}

export const pair = (lo: number, hi: number) => ((lo & 0xffff) | ((hi & 0xffff) << 16)) >>> 0;

/**
 * A unit of code for a hart with the C extension, whole words long: two compressed
 * instructions, a random 32-bit unit placed at pc % 4 == 2 between compressed ones, a C.LW or
 * C.SW on the data area (x8), or a compressed branch or jump that skips to pc + 6 (a block
 * start in the middle of a word).
 */
export function randomCompressedUnit(r: Rng): number[] {
  switch (r.int(6)) {
    case 0: case 1:
      return [pair(compressedAlu(r), compressedAlu(r))];
    case 2: {
      const w = randomInsn(r);
      const out: number[] = [];
      let lo = compressedAlu(r);
      for (const x of w) {
        out.push(pair(lo, x));
        lo = x >>> 16;
      }
      out.push(pair(lo, compressedAlu(r)));
      return out;
    }
    case 3:
      return [pair(cenc.clsw(r.int(2) === 0, 8, r.pick(FREE_C), r.int(32) * 4), compressedAlu(r))];
    default: {
      // pc: branch or jump to pc + 6; pc + 2 and pc + 4 run only when the branch is not taken.
      const k = r.int(3);
      const jump = k === 0 ? cenc.cj(5, 6) : cenc.cb(k === 1 ? 6 : 7, r.pick(FREE_C), 6);
      return [pair(jump, compressedAlu(r)), pair(compressedAlu(r), compressedAlu(r))];
    }
  }
}

/** An instruction that traps: load/store access faults, misaligned AMO and jump, illegal, ECALL. */
export function faultInsn(kind: number): number {
  switch (kind % 6) {
    case 0: return lw(5, 0, -16); // a hole at 0xfffffff0: load access fault
    case 1: return enc.s(0x23, 2, 0, 6, -32); // store access fault
    case 2: return enc.r(0x2f, 2, 0, 7, 4, 5); // amoadd.w on x4 (misaligned)
    case 3: return enc.i(0x67, 0, 1, 0, 6); // jalr to 6: instruction address misaligned
    case 4: return enc.r(0x33, 0, 0x05, 5, 6, 7); // reserved funct7: illegal
    default: return ECALL;
  }
}

/**
 * An access through x28, which holds x8 except in the iteration the program names, when it
 * points at a hole: the access faults once, in the middle of code that is already compiled.
 */
export function dynamicFaultInsn(kind: number): number {
  switch (kind % 3) {
    case 0: return lw(5, 28, 16);
    case 1: return enc.s(0x23, 2, 28, 6, 32);
    default: return enc.r(0x2f, 2, 0, 7, 28, 5); // amoadd.w x7, x5, (x28)
  }
}

export interface ProgramSpec {
  body: number[][];
  iterations: number;
  /** Make x28 = -64 in the iteration where the loop counter x31 equals this (x8 otherwise). */
  faultIteration?: number;
  /** Put self-modifying code in the body: the store is unit `storeAt`, its target unit `targetAt`. */
  smc?: { storeAt: number; targetAt: number; fenceI: boolean };
}

/** Assemble a complete program: prologue, the loop around `body`, exit, trap handler. */
export function assemble(r: Rng, spec: ProgramSpec): Uint8Array {
  const words: number[] = [];
  const put = (...w: number[]) => words.push(...w);
  put(...li(8, DATA), addi(9, 8, 256), addi(4, 8, 258));
  const mtvecAt = words.length;
  put(0, 0, csrrw(0, CSR.mtvec, 1)); // auipc/addi x1 = handler, patched below
  put(addi(1, 0, 8), csrrw(0, CSR.mie, 1), csrrs(0, CSR.mstatus, 1)); // MSIE, MIE
  for (const reg of FREE.slice(1)) put(...li(reg, r.value()));
  put(...li(31, spec.iterations));
  const smcAt = words.length;
  put(0, 0); // auipc/addi x30 = the self-modified instruction, patched below
  const loop = words.length;
  if (spec.faultIteration !== undefined) {
    // x28 = (x31 == faultIteration) ? -64 (a hole at the top of the address space) : x8
    put(
      addi(28, 31, -spec.faultIteration), enc.i(0x13, 3, 28, 28, 1), enc.r(0x33, 0, 0x20, 28, 0, 28),
      enc.i(0x13, 4, 29, 28, -1), enc.r(0x33, 7, 0, 29, 29, 8), andi(28, 28, -64), or(28, 28, 29),
    );
  }
  let targetPc = -1;
  spec.body.forEach((unit, i) => {
    if (spec.smc?.targetAt === i) {
      targetPc = BASE + 4 * words.length;
      put(addi(27, 27, 0));
    }
    if (spec.smc?.storeAt === i) {
      // x29 = addi x27, x27, <loop counter>: encoded at run time, stored over the target.
      put(slli(29, 31, 20), ...li(28, 0x000d8d93), or(29, 29, 28), sw(30, 29, 0));
      if (spec.smc.fenceI) put(FENCE_I);
    }
    put(...unit);
  });
  put(addi(31, 31, -1));
  put(bnez(31, 4 * (loop - words.length)));
  put(...li(1, FINISHER), ...li(2, 0x5555), sw(1, 2, 0), enc.j(0, 0));
  const handler = words.length;
  put(
    csrrs(1, CSR.mcause, 0),
    lw(3, 8, -2048), addi(2, 3, 1), sw(8, 2, -2048),
    andi(3, 3, 63), slli(3, 3, 4), add(3, 3, 8),
    sw(3, 1, -2032),
    csrrs(2, CSR.mepc, 0), sw(3, 2, -2028),
    csrrs(2, CSR.mtval, 0), sw(3, 2, -2024),
    csrrs(2, CSR.minstret, 0), sw(3, 2, -2020),
    blt(1, 0, 20),
    csrrs(2, CSR.mepc, 0), addi(2, 2, 4), csrrw(0, CSR.mepc, 2),
    MRET,
    // An interrupt: clear the CLINT's msip and return to the interrupted instruction.
    ...li(2, CLINT_MSIP), sw(2, 0, 0), MRET,
  );
  const rel = (at: number, target: number) => {
    const d = target - (BASE + 4 * at);
    const hi = ((d + 0x800) >> 12) & 0xfffff;
    return [hi, (d << 20) >> 20];
  };
  const [hh, hl] = rel(mtvecAt, BASE + 4 * handler);
  words[mtvecAt] = auipc(1, hh);
  words[mtvecAt + 1] = addi(1, 1, hl);
  const [sh, sl] = rel(smcAt, targetPc < 0 ? DATA : targetPc);
  words[smcAt] = auipc(30, sh);
  words[smcAt + 1] = addi(30, 30, sl);
  const bytes = new Uint8Array(words.length * 4);
  const dv = new DataView(bytes.buffer);
  words.forEach((w, i) => dv.setUint32(4 * i, w >>> 0, true));
  return writeElf([{ addr: BASE, bytes }], BASE);
}

export interface Outcome {
  status: number | null;
  state: string;
  ram: string;
  jit: { compiled: number; invalidated: number; jitInsns: number; interpInsns: number } | null;
}

/** Run to the finisher, raising a software interrupt when instret reaches each of `irqAt`. */
export function run(elf: Uint8Array, accel: Accel, irqAt: number[], rvc = false): Outcome {
  // Without C the programs have IALIGN 32 (a jump to 6 is misaligned), as QEMU's -cpu rv32,c=false.
  const m = new Machine({ ramSize: 8 << 20, serialOut: () => undefined, kernel: elf, accel, rvc });
  if (m.engine.jit !== null) m.engine.jit.hot = 2;
  const pending = [...irqAt].sort((a, b) => a - b);
  let status: number | null = null;
  for (let guard = 0; guard < 2_000; guard++) {
    if (pending.length > 0 && m.cpu.instret >= pending[0]) {
      pending.shift();
      m.bus.store(CLINT_MSIP, 4, 1);
      continue;
    }
    const want = pending.length > 0 ? pending[0] - m.cpu.instret : 100_000;
    const r = m.runSlice(want);
    if (r.kind === "shutdown") {
      status = r.code;
      break;
    }
    if (r.kind === "idle") break;
  }
  const s = saveCpuState(m.cpu);
  const state = JSON.stringify(s, (_k, v: unknown) =>
    typeof v === "bigint" ? v.toString() : ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v,
  );
  const ram = Buffer.from(m.ram.bytes.subarray(0, 0x11000)).toString("base64");
  const st = m.engine.jit?.snapshotStats();
  return { status, state, ram, jit: st ? { compiled: st.compiled, invalidated: st.invalidated, jitInsns: st.jitInsns, interpInsns: st.interpInsns } : null };
}

