/* CPU benchmark (bench/cpu.ts): a load/store loop over a 64 KiB buffer, 10 instructions
 * per iteration (4 loads, 4 stores), ITER iterations. */
#include "common.h"
#define ITER 10000000
  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  li s0, ITER
  la s1, buf
  li s2, 0
  li s7, 0xfff0
1:
  and t0, s2, s7
  add t0, t0, s1
  lw t1, 0(t0)
  lw t2, 4(t0)
  sw t2, 0(t0)
  sw t1, 4(t0)
  lw t3, 8(t0)
  sw s0, 8(t0)
  lbu t4, 12(t0)
  sb t3, 12(t0)
  addi s2, s2, 16
  addi s0, s0, -1
  bnez s0, 1b
  PHEX t1
  NL
  lw ra, 0(sp)
  addi sp, sp, 16
  ret
  .bss
  .align 12
buf: .space 65536 + 64
