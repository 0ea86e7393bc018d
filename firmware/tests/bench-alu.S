/* CPU benchmark (bench/cpu.ts): a register-only ALU loop, 10 instructions per iteration,
 * ITER iterations, then a checksum and exit. */
#include "common.h"
#define ITER 10000000
  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  li s0, ITER
  li s1, 1
  li s2, 0x12345678
  li s3, 0
1:
  add s3, s3, s1
  xor s2, s2, s3
  slli s4, s2, 3
  srli s5, s2, 7
  or s2, s4, s5
  sub s3, s3, s2
  andi s6, s3, 0xff
  addi s1, s1, 3
  addi s0, s0, -1
  bnez s0, 1b
  PHEX s3
  NL
  lw ra, 0(sp)
  addi sp, sp, 16
  ret
