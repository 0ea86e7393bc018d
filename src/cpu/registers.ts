// The integer registers' ABI names (RISC-V psABI, "Integer Register Convention"), x0..x31 in
// order. The disassembler and HMP `info registers` print these, as QEMU does.

export const ABI_NAMES: readonly string[] = [
  "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
  "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
];
