// Random programs aimed at the block compiler (src/cpu/jit/), run on the interpreter and on
// the compiler (and in --accel check mode, which compares every compiled region with the
// interpreter as it runs): long straight-line blocks inside a hot loop, a fault placed at
// every position of a block, code that rewrites itself (ahead of the store in the same
// block, and behind it for the next iteration), and software interrupts injected at random
// instruction counts. The final hart state (registers, pc, every CSR, instret, mcycle), the
// trap log the handler keeps (mcause, mepc, mtval, minstret of each trap) and the data and
// code RAM must be identical on every engine.

import { describe, expect, it } from "vitest";
import { Rng } from "../random-program.js";
import { assemble, dynamicFaultInsn, faultInsn, randomInsn, run, type Outcome } from "./programs.js";

function expectSame(elf: Uint8Array, irqAt: number[] = []): Outcome {
  const ref = run(elf, "interp", irqAt);
  expect(ref.status).toBe(0);
  let jit: Outcome = ref;
  for (const accel of ["jit", "check"] as const) {
    const o = run(elf, accel, irqAt);
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
});
