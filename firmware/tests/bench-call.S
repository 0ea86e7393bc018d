/* CPU benchmark (bench/cpu.ts): branchy code with calls: a data-dependent branch and a
 * call/return through a small leaf function with a stack frame per iteration. */
#include "common.h"
#define ITER 5000000
  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  li s0, ITER
  li s1, 0
  li s2, 0x9e3779b9
1:
  mv a0, s2
  call leaf
  add s1, s1, a0
  slli t0, s2, 13
  xor s2, s2, t0
  srli t0, s2, 17
  xor s2, s2, t0
  andi t0, s2, 1
  beqz t0, 2f
  addi s1, s1, 7
  j 3f
2:
  addi s1, s1, -3
3:
  addi s0, s0, -1
  bnez s0, 1b
  PHEX s1
  NL
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

leaf:
  addi sp, sp, -16
  sw ra, 12(sp)
  sw s0, 8(sp)
  andi s0, a0, 3
  bnez s0, 1f
  addi a0, a0, 1
1:
  srai a0, a0, 2
  lw s0, 8(sp)
  lw ra, 12(sp)
  addi sp, sp, 16
  ret
