// minstret and mcycle written by software (privileged spec 3.3.1 and the Zicntr chapter: a CSR
// write takes effect after the writing instruction retired, so the written value is not
// incremented by it). QEMU 7.2 counts host ticks here, so this is checked on minivm alone.

import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { tinyElf } from "../helpers/elf.js";
import { enc, li } from "./rv-asm.js";

const csrrw = (rd: number, csr: number, rs1: number) => enc.i(0x73, 1, rd, rs1, csr);
const csrr = (rd: number, csr: number) => enc.i(0x73, 2, rd, 0, csr);
const MINSTRET = 0xb02;
const MINSTRETH = 0xb82;
const MCYCLE = 0xb00;
const J_SELF = 0x0000006f;

function run(program: number[]): Machine {
  const m = new Machine({ kernel: tinyElf([...program, J_SELF]), serialOut: () => undefined });
  m.runSlice(1000);
  return m;
}

describe("counter CSRs written by software", () => {
  it("reads back exactly what was written to minstret, then one more per instruction", () => {
    const m = run([...li(5, 100), csrrw(0, MINSTRET, 5), csrr(10, MINSTRET), csrr(11, MINSTRET), enc.i(0x13, 0, 0, 0, 0), csrr(12, MINSTRET)]);
    expect([m.cpu.x[10], m.cpu.x[11], m.cpu.x[12]]).toEqual([100, 101, 103]);
  });

  it("does not count the writing instruction into minstreth's low word either", () => {
    const m = run([...li(5, 7), ...li(6, -1), csrrw(0, MINSTRET, 6), csrrw(0, MINSTRETH, 5), csrr(10, MINSTRETH), csrr(11, MINSTRET)]);
    // The low word was 0xffffffff after the first write; the minstreth write does not retire
    // into it, so the next read (which counts only instructions before it) sees the wrap.
    expect(m.cpu.x[10]).toBe(7);
    expect(m.cpu.x[11] >>> 0).toBe(0);
  });

  it("reads back exactly what was written to mcycle, and mcycle keeps counting past a minstret write", () => {
    const m = run([...li(5, 1000), csrrw(0, MCYCLE, 5), csrr(10, MCYCLE), csrrw(0, MINSTRET, 0), csrr(11, MCYCLE)]);
    expect(m.cpu.x[10]).toBe(1000);
    expect(m.cpu.x[11]).toBe(1002);
  });

  it("counts the instructions before a read, not the reading one", () => {
    const m = run([csrr(10, MINSTRET)]);
    // The ELF starts at 0x80000000 after the boot ROM's instructions.
    const rom = m.cpu.x[10];
    const m2 = run([enc.i(0x13, 0, 0, 0, 0), csrr(10, MINSTRET)]);
    expect(m2.cpu.x[10] - rom).toBe(1);
  });
});
