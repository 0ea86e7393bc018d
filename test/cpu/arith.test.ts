// The M extension helpers against a BigInt reference (BigInt is fine here: tests are not
// the interpreter's hot path).

import { describe, expect, it } from "vitest";
import { div, divu, mulh, mulhsu, mulhu, rem, remu } from "../../src/cpu/arith.js";
import { Rng } from "./random-program.js";

const s = (v: number) => BigInt(v | 0);
const u = (v: number) => BigInt(v >>> 0);
const hi = (p: bigint) => Number(BigInt.asIntN(32, p >> 32n));

describe("M extension arithmetic", () => {
  it("computes the high product halves exactly", () => {
    const rng = new Rng(7);
    for (let i = 0; i < 20000; i++) {
      const a = rng.value();
      const b = rng.value();
      expect(mulhu(a, b)).toBe(hi(u(a) * u(b)));
      expect(mulh(a, b)).toBe(hi(s(a) * s(b)));
      expect(mulhsu(a, b)).toBe(hi(s(a) * u(b)));
    }
  });

  it("divides with RISC-V's rules for zero divisors and overflow", () => {
    const rng = new Rng(11);
    for (let i = 0; i < 20000; i++) {
      const a = rng.value();
      const b = i % 7 === 0 ? 0 : rng.value();
      const trunc = (x: bigint, y: bigint) => x / y;
      expect(div(a, b)).toBe(b === 0 ? -1 : a === -0x80000000 && b === -1 ? a : Number(BigInt.asIntN(32, trunc(s(a), s(b)))));
      expect(rem(a, b)).toBe(b === 0 ? a : a === -0x80000000 && b === -1 ? 0 : Number(BigInt.asIntN(32, s(a) % s(b))));
      expect(divu(a, b)).toBe(b === 0 ? -1 : Number(BigInt.asIntN(32, u(a) / u(b))));
      expect(remu(a, b)).toBe(b === 0 ? a : Number(BigInt.asIntN(32, u(a) % u(b))));
    }
  });
});
