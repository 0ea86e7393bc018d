// Random programs aimed at the block compiler (src/cpu/jit/), run on the interpreter and on
// the compiler (and in --accel check mode, which compares every compiled region with the
// interpreter as it runs): long straight-line blocks inside a hot loop, a fault placed at
// every position of a block, code that rewrites itself (ahead of the store in the same
// block, and behind it for the next iteration), and software interrupts injected at random
// instruction counts. The final hart state (registers, pc, every CSR, instret, mcycle), the
// trap log the handler keeps (mcause, mepc, mtval, minstret of each trap) and the data and
// code RAM must be identical on every engine.

import { describe, expect, it } from "vitest";
import { Machine } from "../../../src/core/machine.js";
import { writeElf } from "../elf-writer.js";
import { Rng } from "../random-program.js";
import { addi, C_NOP, enc, jalr, li, sw } from "../rv-asm.js";
import { assemble, dynamicFaultInsn, faultInsn, pair, randomCompressedUnit, randomInsn, run, type Outcome } from "./programs.js";

function expectSame(elf: Uint8Array, irqAt: number[] = [], rvc = false): Outcome {
  const ref = run(elf, "interp", irqAt, rvc);
  expect(ref.status).toBe(0);
  let jit: Outcome = ref;
  for (const accel of ["jit", "check"] as const) {
    const o = run(elf, accel, irqAt, rvc);
    expect(o.status, accel).toBe(ref.status);
    expect(o.state, accel).toBe(ref.state);
    expect(o.ram === ref.ram, `${accel}: RAM differs`).toBe(true);
    if (accel === "jit") jit = o;
  }
  return jit;
}


describe("block compiler against the interpreter", () => {
  it("runs long random blocks in a hot loop identically", () => {
    const r = new Rng(0x5eed0001);
    let compiled = 0;
    for (let p = 0; p < 12; p++) {
      const body = Array.from({ length: 40 + r.int(160) }, () => randomInsn(r));
      const o = expectSame(assemble(r, { body, iterations: 6 + r.int(10) }));
      compiled += o.jit?.compiled ?? 0;
    }
    expect(compiled).toBeGreaterThan(0);
  });

  it("takes a fault at every position of a block with exact pc, mtval and minstret", () => {
    const r = new Rng(0x5eed0002);
    const block = Array.from({ length: 40 }, () => randomInsn(r));
    for (let k = 0; k < block.length; k++) {
      // Always faulting (so the next instruction becomes a block start), and faulting once
      // in the fourth iteration, in the middle of a block compiled in the second.
      const always = block.map((u, i) => (i === k ? [faultInsn(k)] : u));
      expectSame(assemble(new Rng(k), { body: always, iterations: 5 }));
      const once = block.map((u, i) => (i === k ? [dynamicFaultInsn(k)] : u));
      expectSame(assemble(new Rng(k), { body: once, iterations: 6, faultIteration: 3 }));
    }
  });

  it("re-translates code that a store in the same or an earlier block rewrote", () => {
    const r = new Rng(0x5eed0003);
    let invalidated = 0;
    for (let p = 0; p < 8; p++) {
      const body = Array.from({ length: 30 + r.int(30) }, () => randomInsn(r));
      const storeAt = r.int(body.length);
      const targetAt = r.int(body.length);
      const o = expectSame(assemble(r, { body, iterations: 8 + r.int(8), smc: { storeAt, targetAt, fenceI: r.int(2) === 0 } }));
      invalidated += o.jit?.invalidated ?? 0;
    }
    expect(invalidated).toBeGreaterThan(0);
  });

  it("takes interrupts at random instruction counts exactly where the interpreter takes them", () => {
    const r = new Rng(0x5eed0004);
    for (let p = 0; p < 8; p++) {
      const body = Array.from({ length: 20 + r.int(80) }, () => randomInsn(r));
      if (r.int(2) === 0) body[r.int(body.length)] = [faultInsn(r.int(6))];
      const iterations = 10 + r.int(10);
      const irqAt = Array.from({ length: 1 + r.int(12) }, () => 40 + r.int(iterations * body.length));
      const o = expectSame(assemble(r, { body, iterations }), irqAt);
      expect(o.status).toBe(0);
    }
  });

  it("translates compressed code (C on) identically: 16-bit instructions, 32-bit ones at pc % 4 == 2, mid-word block starts", () => {
    const r = new Rng(0x5eed0005);
    let compiled = 0;
    for (let p = 0; p < 12; p++) {
      const body = Array.from({ length: 30 + r.int(120) }, () => (r.int(3) === 0 ? randomInsn(r) : randomCompressedUnit(r)));
      if (p % 3 === 2) {
        // A 32-bit instruction that traps, at pc % 4 == 2 (not the jump to 6: with C that is aligned).
        const f = faultInsn(r.pick([0, 1, 2, 4, 5]));
        body[r.int(body.length)] = [pair(C_NOP, f), pair(f >>> 16, C_NOP)];
      }
      const iterations = 8 + r.int(8);
      const irqAt = p % 2 === 0 ? [] : Array.from({ length: 1 + r.int(6) }, () => 40 + r.int(iterations * body.length));
      const o = expectSame(assemble(r, { body, iterations }), irqAt, true);
      compiled += o.jit?.compiled ?? 0;
      // Compressed instructions no longer end a block: compiled code runs most of the loop.
      expect(o.jit?.jitInsns ?? 0).toBeGreaterThan((o.jit?.interpInsns ?? 0) * 2);
    }
    expect(compiled).toBeGreaterThan(0);
  });

  it("keeps its code cache bounded on a guest that generates code forever", () => {
    // Write a function into each of 40 fresh pages, fence.i, call it three times.
    const w: number[] = [];
    w.push(...li(8, 0x80020000), ...li(9, 40), ...li(10, 0), ...li(27, 0));
    const loop = w.length;
    w.push(enc.i(0x13, 1, 11, 10, 12), enc.r(0x33, 0, 0, 11, 11, 8));
    w.push(enc.i(0x13, 1, 12, 10, 20), ...li(13, 0x000d8d93), enc.r(0x33, 6, 0, 12, 12, 13), sw(11, 12, 0));
    w.push(...li(13, 0x00008067), sw(11, 13, 4), 0x0000100f, ...li(14, 3));
    const call = w.length;
    w.push(jalr(1, 11, 0), addi(14, 14, -1));
    w.push(enc.b(1, 14, 0, 4 * (call - w.length)));
    w.push(addi(10, 10, 1));
    w.push(enc.b(4, 10, 9, 4 * (loop - w.length)));
    w.push(...li(1, 0x100000), ...li(2, 0x5555), sw(1, 2, 0), enc.j(0, 0));
    const bytes = new Uint8Array(w.length * 4);
    w.forEach((v, i) => new DataView(bytes.buffer).setUint32(4 * i, v >>> 0, true));
    const elf = writeElf([{ addr: 0x80000000, bytes }], 0x80000000);
    const sums: number[] = [];
    for (const accel of ["interp", "jit"] as const) {
      const m = new Machine({ ramSize: 8 << 20, serialOut: () => undefined, kernel: elf, accel });
      const jit = m.engine.jit;
      if (jit !== null) {
        jit.hot = 1;
        jit.maxRegions = 8;
      }
      let kind = "";
      for (let i = 0; i < 100 && kind !== "shutdown"; i++) kind = m.runSlice(1_000_000).kind;
      expect(kind).toBe("shutdown");
      sums.push(m.cpu.x[27]);
      if (jit !== null) {
        const st = jit.snapshotStats();
        expect(st.regions).toBeLessThanOrEqual(8);
        expect(st.flushes).toBeGreaterThan(3);
        expect(st.compiled).toBeGreaterThan(40);
      }
    }
    // 3 * (0 + 1 + ... + 39)
    expect(sums).toEqual([2340, 2340]);
  });
});
