/* Harness for the random-instruction differential test (test/cpu/differential.test.ts).
 * Not a conformance test: the generator places programs at PROGRAMS and each program
 * calls `rand_begin` first (prints "P<n>", fills the data area from an LCG seeded by n)
 * and `rand_dump` last (prints every register saved at rand_regs and a checksum of the
 * data area). The M-mode trap handler from runtime.S reports and skips traps. */
#include "common.h"
#define PROGRAMS 0x80100000

  .text
  .globl main
main:
  la t0, rand_counter
  sw zero, 0(t0)
  li t0, PROGRAMS
  jr t0

  .globl rand_begin
rand_begin:
  mv s11, ra
  la sp, rand_stack_top
  PUTS "P"
  la t0, rand_counter
  lw a0, 0(t0)
  call puthex
  NL
  la t0, rand_counter
  lw t1, 0(t0)
  addi t2, t1, 1
  sw t2, 0(t0)
  /* data area: 64 words from x = x * 1664525 + 1013904223, seeded with n */
  la t0, rand_data
  li t2, 64
  li t3, 1664525
  li t4, 1013904223
1:
  mul t1, t1, t3
  add t1, t1, t4
  sw t1, 0(t0)
  addi t0, t0, 4
  addi t2, t2, -1
  bnez t2, 1b
  mv ra, s11
  ret

  .globl rand_dump
rand_dump:
  la sp, rand_stack_top
  PUTS "R "
  la s0, rand_regs
  li s1, 31
1:
  lw a0, 0(s0)
  call puthex
  addi s0, s0, 4
  addi s1, s1, -1
  bnez s1, 1b
  /* checksum of the data area: rotate left 5 and xor each word */
  la s0, rand_data
  li s1, 64
  li s2, 0
2:
  lw t0, 0(s0)
  slli t1, s2, 5
  srli s2, s2, 27
  or s2, s2, t1
  xor s2, s2, t0
  addi s0, s0, 4
  addi s1, s1, -1
  bnez s1, 2b
  mv a0, s2
  call puthex
  NL
  lw ra, 0(sp)
  /* return to the saved ra (x1's dumped value is in rand_regs[0]; the real return is in
     rand_ret, written by the epilogue) */
  la t0, rand_ret
  lw t0, 0(t0)
  jr t0

  .globl rand_finish
rand_finish:
  PUTS "random done\n"
  EXIT 0

  .data
  .align 4
  .globl rand_regs
rand_regs: .space 128
  .globl rand_ret
rand_ret: .word 0
rand_counter: .word 0
  .align 6
  .globl rand_data
rand_data: .space 256
  .space 1024
rand_stack_top:
