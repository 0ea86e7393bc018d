// Translating a region (region.ts) to JavaScript source for `new Function`. The generated
// function keeps the guest registers it uses in locals, runs a `switch (pc)` inside a loop
// (one case per block start; a direct jump to a block of the same region is `pc = T;
// continue`, never a return to the dispatcher), and on every exit writes the registers back,
// stores pc and adds the instructions it ran to instret. The instruction semantics are the
// interpreter's (cpu.ts), case for case; its slow paths (memory.ts) are called unchanged,
// so faults, MMIO, A/D updates and write tracking behave exactly as they do there.

import { branchTarget, isTerminator, jalTarget, type Region } from "./region.js";

/** Options baked into the generated code (changing them means recompiling: Jit.flush()). */
export interface CodegenOptions {
  /**
   * Inline TLB-hit paths for loads and stores. When false every access calls memory.ts's
   * loadSlow/storeSlow, the hook postcopy (or any page-present check) needs.
   */
  fastMemory: boolean;
  /** Check the exit-request word at the start of every block (false only for measuring its cost). */
  exitCheck: boolean;
  /**
   * Jump targets with any of these bits set raise instruction-address-misaligned: 3 without
   * the C extension, 1 with it (IALIGN 16). Part of the translation regime (misa.C).
   */
  ialignMask: number;
  /**
   * Annotate the source (each case's address, each instruction's pc and word). Only for
   * reading it (MINIVM_JIT_DUMP, keepSource): V8 parses every byte, and the comments are a
   * fifth of a region's source.
   */
  comments?: boolean;
}

const hex = (v: number) => "0x" + (v >>> 0).toString(16);
/** pc constants as the interpreter holds them: signed 32-bit. */
const lit = (v: number) => String(v | 0);

/**
 * JavaScript source of a factory `(rt) => blockFunction`. The block function has the
 * signature (n, budget, pc, dtag) => n: n counts instructions attempted in this execute()
 * call (as the interpreter's loop counts them), budget is execute()'s budget, pc the entry.
 */
export function generateRegion(region: Region, opts: CodegenOptions): string {
  const used = new Set<number>();
  const written = new Set<number>();
  for (const inst of region.words.values()) {
    const op = inst & 0x7f;
    const rd = (inst >>> 7) & 31;
    const rs1 = (inst >>> 15) & 31;
    const rs2 = (inst >>> 20) & 31;
    if (op !== 0x37 && op !== 0x17 && op !== 0x6f && op !== 0x0f) used.add(rs1);
    if (op === 0x63 || op === 0x23 || op === 0x33 || op === 0x2f) used.add(rs2);
    if (op !== 0x63 && op !== 0x23 && op !== 0x0f) {
      used.add(rd);
      written.add(rd);
    }
  }
  used.delete(0);
  written.delete(0);
  const R = (r: number) => (r === 0 ? "0" : `x${r}`);
  // A write to x0 is evaluated for its side effects only.
  const W = (r: number) => (r === 0 ? "t" : `x${r}`);

  const labels = region.labels.filter((l) => region.words.has(l));
  const labelSet = new Set(labels);
  // Cases are numbered 0..N-1 in address order so that V8 can use a jump table.
  const labelIndex = new Map(labels.map((l, i) => [l, i]));
  const base = region.entry & ~0xfff;
  const goto = (target: number) => {
    const i = labelIndex.get(target);
    return i === undefined ? `pc = ${lit(target)}; break loop;` : `L = ${i}; continue loop;`;
  };
  const out: string[] = [];
  const emit = (s: string) => out.push(s);

  for (let li = 0; li < labels.length; li++) {
    const start = labels[li];
    // The run: until a terminator, the next label, a pc the region does not hold, or MAX.
    const run: number[] = [];
    const pcs: number[] = [];
    let pc = start;
    let end: "term" | "fall" | "exit" = "exit";
    for (;;) {
      if (run.length > 0 && labelSet.has(pc)) { end = "fall"; break; }
      const inst = region.words.get(pc);
      if (inst === undefined) { end = "exit"; break; }
      run.push(inst);
      pcs.push(pc);
      const len = region.lengths.get(pc) ?? 4;
      pc = (pc + len) | 0;
      if (isTerminator(inst)) { end = "term"; break; }
    }
    const len = run.length;
    emit(opts.comments ? `case ${li}: // ${hex(start)}, ${len} insns` : `case ${li}:`);
    const exitCheck = opts.exitCheck ? ` || ew[0] !== 0` : "";
    emit(`if (n + ${len} > budget${exitCheck}) { pc = ${lit(start)}; break loop; }`);
    emit(`n += ${len};`);
    for (let k = 0; k < len; k++) {
      const ipc = pcs[k];
      const ilen = region.lengths.get(ipc) ?? 4;
      const inst = run[k];
      // Leave after instruction k raised a trap: pc is the handler, as the interpreter leaves it.
      const back = len - k - 1;
      const fault = `{ ${back ? `n -= ${back}; ` : ""}pc = cpu.pc; stop = 1; break loop; }`;
      // Leave after instruction k completed but reached a device (the interpreter returns to
      // the board) or wrote over translated code (the dispatcher must look again).
      const after = `if (cpu.mmioTouched || rt.stale) { ${back ? `n -= ${back}; ` : ""}pc = ${lit(ipc + ilen)}; stop = cpu.mmioTouched ? 2 : 0; break loop; }`;
      if (opts.comments) emit(`// ${hex(ipc)}: ${hex(inst)}${ilen === 2 ? " (compressed)" : ""}`);
      // The case that follows in the switch is the next label: falling into it costs no jump.
      const gotoEnd = (target: number) => (labelIndex.get(target) === li + 1 ? (opts.comments ? `/* falls into case ${li + 1} */` : "") : goto(target));
      translateOne(inst, ipc, ilen, fault, after, R, W, goto, gotoEnd, base, opts, emit);
    }
    if (end === "exit") emit(`pc = ${lit(pc)}; break loop;`);
  }

  const regs = [...used].sort((a, b) => a - b);
  const wregs = [...written].sort((a, b) => a - b);
  return [
    `"use strict";`,
    `const cpu = rt.cpu, x = cpu.x, ram8 = cpu.ram8, ram16 = cpu.ram16, ram32 = cpu.ram32, dirty = cpu.dirty;`,
    `const rTag = cpu.tlbRTag, rOff = cpu.tlbROff, wTag = cpu.tlbWTag, wOff = cpu.tlbWOff, ew = rt.exitWord;`,
    `const loadSlow = rt.loadSlow, storeSlow = rt.storeSlow, amo = rt.amo, raise = rt.raise;`,
    `const mulh = rt.mulh, mulhsu = rt.mulhsu, mulhu = rt.mulhu, div = rt.div, divu = rt.divu, rem = rt.rem, remu = rt.remu;`,
    // Case number by page offset / 2 (instructions start at any even offset with C).
    `const li = new Int16Array(2048).fill(-1);`,
    labels.map((l, i) => `li[${(l & 0xfff) >>> 1}] = ${i};`).join(" "),
    // Parenthesised: V8 compiles it now (inside the translation), not lazily at its first call.
    `return (function region_${(region.entry >>> 0).toString(16)}(n, budget, pc, dtag) {`,
    `const n0 = n; let stop = 0, t = 0, L = ((pc ^ ${hex(base)}) >>> 0) < 4096 ? li[(pc ^ ${hex(base)}) >>> 1] : -1;`,
    regs.length ? `let ${regs.map((r) => `x${r} = x[${r}]`).join(", ")};` : "",
    `loop: for (;;) {`,
    `switch (L) {`,
    ...out,
    `default: break loop;`,
    `}`,
    `}`,
    wregs.map((r) => `x[${r}] = x${r};`).join(" "),
    `cpu.pc = pc; cpu.instret += n - n0; rt.stop = stop;`,
    `return n;`,
    `});`,
  ].join("\n");
}

function translateOne(
  inst: number,
  pc: number,
  len: number,
  fault: string,
  after: string,
  R: (r: number) => string,
  W: (r: number) => string,
  goto: (target: number) => string,
  gotoEnd: (target: number) => string,
  base: number,
  opts: CodegenOptions,
  emit: (s: string) => void,
): void {
  const rd = (inst >>> 7) & 31;
  const rs1 = (inst >>> 15) & 31;
  const rs2 = (inst >>> 20) & 31;
  const f3 = (inst >>> 12) & 7;
  const f7 = inst >>> 25;
  const immI = inst >> 20;
  const next = lit(pc + len);
  const trapMisaligned = (target: number) => `raise(cpu, 0, ${lit(target)}, ${lit(pc)}); ${fault}`;
  switch (inst & 0x7f) {
    case 0x37:
      if (rd) emit(`x${rd} = ${inst & 0xfffff000};`);
      return;
    case 0x17:
      if (rd) emit(`x${rd} = ${lit(pc + (inst & 0xfffff000))};`);
      return;
    case 0x6f: {
      const target = jalTarget(pc, inst);
      if ((target & opts.ialignMask) !== 0) { emit(trapMisaligned(target)); return; }
      if (rd) emit(`x${rd} = ${next};`);
      emit(gotoEnd(target));
      return;
    }
    case 0x67:
      emit(`t = (${R(rs1)} + ${immI}) & -2;`);
      emit(`if ((t & ${opts.ialignMask}) !== 0) { raise(cpu, 0, t, ${lit(pc)}); ${fault} }`);
      if (rd) emit(`x${rd} = ${next};`);
      // An indirect jump stays in the region when it lands on one of its labels (a return).
      emit(`pc = t; t = (t ^ ${hex(base)}) >>> 0; if (t < 4096) { L = li[t >>> 1]; continue loop; } break loop;`);
      return;
    case 0x63: {
      const a = R(rs1);
      const b = R(rs2);
      const cond = [
        `${a} === ${b}`, `${a} !== ${b}`, "", "",
        `${a} < ${b}`, `${a} >= ${b}`, `(${a} >>> 0) < (${b} >>> 0)`, `(${a} >>> 0) >= (${b} >>> 0)`,
      ][f3];
      const target = branchTarget(pc, inst);
      const taken = (target & opts.ialignMask) !== 0 ? `{ ${trapMisaligned(target)} }` : `{ ${goto(target)} }`;
      emit(`if (${cond}) ${taken}`);
      emit(gotoEnd((pc + len) | 0));
      return;
    }
    case 0x03: {
      const addr = `(${R(rs1)} + ${immI}) | 0`;
      const mask = f3 === 2 ? 3 : f3 === 1 || f3 === 5 ? 1 : 0;
      const read = [
        `(ram8[t] << 24) >> 24`, `(ram16[t >>> 1] << 16) >> 16`, `ram32[t >>> 2]`, "", `ram8[t]`, `ram16[t >>> 1]`,
      ][f3];
      emit(`{ const a = ${addr};`);
      if (opts.fastMemory) {
        const aligned = mask ? ` && (a & ${mask}) === 0` : "";
        emit(`const i = (a >>> 12) & 255; if (rTag[i] === ((a >>> 12) | dtag)${aligned}) { t = rOff[i] + (a & 4095); ${W(rd)} = ${read}; } else {`);
      }
      emit(`const v = loadSlow(cpu, a, ${f3}, ${lit(pc)}); if (v === null) ${fault} ${W(rd)} = v; ${after}`);
      if (opts.fastMemory) emit(`}`);
      emit(`}`);
      return;
    }
    case 0x23: {
      const imm = ((inst >> 25) << 5) | ((inst >>> 7) & 31);
      const mask = (1 << f3) - 1;
      const write = [`ram8[t] = ${R(rs2)}`, `ram16[t >>> 1] = ${R(rs2)}`, `ram32[t >>> 2] = ${R(rs2)}`][f3];
      emit(`{ const a = (${R(rs1)} + ${imm}) | 0;`);
      if (opts.fastMemory) {
        const aligned = mask ? ` && (a & ${mask}) === 0` : "";
        // Watched (code) pages never enter the write TLB, so a hit only needs the dirty bit.
        emit(`const i = (a >>> 12) & 255; if (wTag[i] === ((a >>> 12) | dtag)${aligned}) { t = wOff[i] + (a & 4095); ${write}; t >>>= 12; if ((dirty[t >>> 5] & (1 << (t & 31))) === 0) Atomics.or(dirty, t >>> 5, 1 << (t & 31)); } else {`);
      }
      emit(`if (!storeSlow(cpu, a, ${f3}, ${R(rs2)}, ${lit(pc)})) ${fault} ${after}`);
      if (opts.fastMemory) emit(`}`);
      emit(`}`);
      return;
    }
    case 0x13: {
      const a = R(rs1);
      let e: string;
      switch (f3) {
        case 0: e = rs1 === 0 ? String(immI) : `(${a} + ${immI}) | 0`; break;
        case 2: e = `${a} < ${immI} ? 1 : 0`; break;
        case 3: e = `(${a} >>> 0) < ${immI >>> 0} ? 1 : 0`; break;
        case 4: e = `${a} ^ ${immI}`; break;
        case 6: e = `${a} | ${immI}`; break;
        case 7: e = `${a} & ${immI}`; break;
        case 1: e = `${a} << ${immI & 31}`; break;
        default: e = f7 === 0 ? `${a} >>> ${immI & 31}` : `${a} >> ${immI & 31}`; break;
      }
      // >>> 0 would leave a value above 2^31 in a register local: keep them all int32.
      if (f3 === 5 && f7 === 0) e = `(${e}) | 0`;
      if (rd) emit(`x${rd} = ${e};`);
      return;
    }
    case 0x33: {
      const a = R(rs1);
      const b = R(rs2);
      let e: string;
      if (f7 === 0) {
        e = [
          `(${a} + ${b}) | 0`, `${a} << (${b} & 31)`, `${a} < ${b} ? 1 : 0`, `(${a} >>> 0) < (${b} >>> 0) ? 1 : 0`,
          `${a} ^ ${b}`, `(${a} >>> (${b} & 31)) | 0`, `${a} | ${b}`, `${a} & ${b}`,
        ][f3];
      } else if (f7 === 0x20) {
        e = f3 === 0 ? `(${a} - ${b}) | 0` : `${a} >> (${b} & 31)`;
      } else {
        e = [
          `Math.imul(${a}, ${b})`, `mulh(${a}, ${b})`, `mulhsu(${a}, ${b})`, `mulhu(${a}, ${b})`,
          `div(${a}, ${b})`, `divu(${a}, ${b})`, `rem(${a}, ${b})`, `remu(${a}, ${b})`,
        ][f3];
      }
      if (rd) emit(`x${rd} = ${e};`);
      return;
    }
    case 0x0f:
      // FENCE: one hart, nothing to order. FENCE.I: stores into translated code already
      // invalidated it (write tracking), so it only ends the block (QEMU does the same).
      if (f3 === 1) emit(`pc = ${next}; break loop;`);
      return;
    case 0x2f:
      // The A extension runs in memory.ts, which reads and writes cpu.x: sync around it.
      emit(`x[0] = 0;${rs1 ? ` x[${rs1}] = x${rs1};` : ""}${rs2 ? ` x[${rs2}] = x${rs2};` : ""}`);
      emit(`if (!amo(cpu, ${inst | 0}, ${lit(pc)})) ${fault}`);
      emit(rd ? `x${rd} = x[${rd}];` : `x[0] = 0;`);
      emit(after);
      return;
    default:
      throw new Error(`codegen: instruction ${hex(inst)} at ${hex(pc)} is not translatable`);
  }
}
