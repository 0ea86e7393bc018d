// expandCompressed() on hand-checked encodings: every RV32C instruction (C.FLW and the other
// F/D forms excluded: this hart has no F), with the extremes of each immediate, against the
// 32-bit instruction it stands for (unprivileged spec chapter 16, tables 16.5-16.7); then
// the reserved encodings and HINTs as QEMU 7.2 treats them.

import { describe, expect, it } from "vitest";
import { expandCompressed } from "../../src/cpu/rvc.js";

const hex = (v: number, digits: number) => "0x" + (v >>> 0).toString(16).padStart(digits, "0");

/** [assembly, 16-bit encoding, the 32-bit instruction it expands to]. */
const FORMS: [string, number, number][] = [
  ["c.addi4spn a0, sp, 1020", 0x1fe8, 0x3fc10513], // addi a0, sp, 1020
  ["c.addi4spn s1, sp, 4", 0x0044, 0x00410493], // addi s1, sp, 4
  ["c.lw a5, 124(s0)", 0x5c7c, 0x07c42783], // lw a5, 124(s0)
  ["c.lw s0, 0(a5)", 0x4380, 0x0007a403], // lw s0, 0(a5)
  ["c.sw a2, 64(a3)", 0xc2b0, 0x04c6a023], // sw a2, 64(a3)
  ["c.sw s1, 4(a0)", 0xc144, 0x00952223], // sw s1, 4(a0)
  ["c.nop", 0x0001, 0x00000013], // addi zero, zero, 0
  ["c.addi t0, -32", 0x1281, 0xfe028293], // addi t0, t0, -32
  ["c.addi a1, 31", 0x05fd, 0x01f58593], // addi a1, a1, 31
  ["c.jal .+2046", 0x2ffd, 0x7fe000ef], // jal ra, .+2046
  ["c.jal .-2048", 0x3001, 0x801ff0ef], // jal ra, .-2048
  ["c.li s11, -1", 0x5dfd, 0xfff00d93], // addi s11, zero, -1
  ["c.li a0, 17", 0x4545, 0x01100513], // addi a0, zero, 17
  ["c.addi16sp sp, -512", 0x7101, 0xe0010113], // addi sp, sp, -512
  ["c.addi16sp sp, 496", 0x617d, 0x1f010113], // addi sp, sp, 496
  ["c.lui a0, 1", 0x6505, 0x00001537], // lui a0, 1
  ["c.lui t6, 0xfffe0", 0x7f81, 0xfffe0fb7], // lui t6, 0xfffe0
  ["c.lui ra, 31", 0x60fd, 0x0001f0b7], // lui ra, 31
  ["c.srli a3, 31", 0x82fd, 0x01f6d693], // srli a3, a3, 31
  ["c.srai s0, 1", 0x8405, 0x40145413], // srai s0, s0, 1
  ["c.andi a4, -32", 0x9b01, 0xfe077713], // andi a4, a4, -32
  ["c.andi a5, 15", 0x8bbd, 0x00f7f793], // andi a5, a5, 15
  ["c.sub s0, s1", 0x8c05, 0x40940433], // sub s0, s0, s1
  ["c.xor a0, a1", 0x8d2d, 0x00b54533], // xor a0, a0, a1
  ["c.or a2, a3", 0x8e55, 0x00d66633], // or a2, a2, a3
  ["c.and a4, a5", 0x8f7d, 0x00f77733], // and a4, a4, a5
  ["c.j .+2046", 0xaffd, 0x7fe0006f], // jal zero, .+2046
  ["c.j .-2048", 0xb001, 0x801ff06f], // jal zero, .-2048
  ["c.beqz a0, .+254", 0xcd7d, 0x0e050f63], // beq a0, zero, .+254
  ["c.beqz s1, .-256", 0xd081, 0xf00480e3], // beq s1, zero, .-256
  ["c.bnez a5, .+2", 0xe389, 0x00079163], // bne a5, zero, .+2
  ["c.bnez s0, .-2", 0xfc7d, 0xfe041fe3], // bne s0, zero, .-2
  ["c.slli t1, 31", 0x037e, 0x01f31313], // slli t1, t1, 31
  ["c.slli ra, 1", 0x0086, 0x00109093], // slli ra, ra, 1
  ["c.lwsp a0, 252(sp)", 0x557e, 0x0fc12503], // lw a0, 252(sp)
  ["c.lwsp ra, 0(sp)", 0x4082, 0x00012083], // lw ra, 0(sp)
  ["c.jr ra", 0x8082, 0x00008067], // jalr zero, 0(ra)
  ["c.jr t6", 0x8f82, 0x000f8067], // jalr zero, 0(t6)
  ["c.mv a0, s11", 0x856e, 0x000d8513], // addi a0, s11, 0 (QEMU's expansion; same effect as add a0, zero, s11)
  ["c.ebreak", 0x9002, 0x00100073], // ebreak
  ["c.jalr a2", 0x9602, 0x000600e7], // jalr ra, 0(a2)
  ["c.add t0, t1", 0x929a, 0x006282b3], // add t0, t0, t1
  ["c.swsp s11, 252(sp)", 0xdfee, 0x0fb12e23], // sw s11, 252(sp)
  ["c.swsp zero, 0(sp)", 0xc002, 0x00012023], // sw zero, 0(sp)
];

describe("expandCompressed", () => {
  it.each(FORMS)("%s expands to its 32-bit twin", (_asm, half, word) => {
    expect(hex(expandCompressed(half), 8)).toBe(hex(word, 8));
  });

  it("covers every RV32C instruction except the floating-point ones", () => {
    const names = new Set(FORMS.map(([asm]) => asm.split(" ")[0]));
    for (const n of ["c.addi4spn", "c.lw", "c.sw", "c.nop", "c.addi", "c.jal", "c.li", "c.addi16sp", "c.lui", "c.srli", "c.srai",
      "c.andi", "c.sub", "c.xor", "c.or", "c.and", "c.j", "c.beqz", "c.bnez", "c.slli", "c.lwsp", "c.jr", "c.mv", "c.ebreak",
      "c.jalr", "c.add", "c.swsp"]) expect(names.has(n), n).toBe(true);
  });

  it.each([
    [0x0000, "all zeros"],
    [0x0010, "C.ADDI4SPN with nzuimm = 0"],
    [0x4002, "C.LWSP with rd = x0"],
    [0x6101, "C.ADDI16SP with nzimm = 0"],
    [0x6501, "C.LUI with nzimm = 0"],
    [0x8002, "C.JR with rs1 = x0"],
    [0x9005, "C.SRLI with shamt[5] set (RV32)"],
    [0x9405, "C.SRAI with shamt[5] set (RV32)"],
    [0x1512, "C.SLLI with shamt[5] set (RV32)"],
    [0x9c01, "C.SUBW (RV64)"],
    [0x9c21, "C.ADDW (RV64)"],
    [0x2000, "C.FLD"],
    [0x6000, "C.FLW"],
    [0xa000, "C.FSD"],
    [0xe000, "C.FSW"],
    [0x2002, "C.FLDSP"],
    [0x6002, "C.FLWSP"],
    [0xa002, "C.FSDSP"],
    [0xe002, "C.FSWSP"],
    [0x8000, "quadrant 0, funct3 100 (reserved)"],
  ])("%s (%s) is illegal", (half) => {
    expect(expandCompressed(half)).toBe(0);
  });

  it.each([
    [0x4015, 0x00500013, "C.LI x0, 5"],
    [0x0005, 0x00100013, "C.ADDI x0, 1"],
    [0x0501, 0x00050513, "C.ADDI a0, 0"],
    [0x6005, 0x00001037, "C.LUI x0, 1"],
    [0x802a, 0x00050013, "C.MV x0, a0"],
    [0x902a, 0x00a00033, "C.ADD x0, a0"],
    [0x0002, 0x00001013, "C.SLLI x0, 0"],
    [0x8001, 0x00045413, "C.SRLI s0, 0"],
  ])("HINT %s expands to a legal no-op", (half, word) => {
    expect(hex(expandCompressed(half), 8)).toBe(hex(word, 8));
  });
});
