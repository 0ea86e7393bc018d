/* A small program for the GDB stub tests (test/gdb/): a function to break at, a counter in
 * memory to watch, a loop to step through, and a line of output when it finishes. */
#include "common.h"

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  li s0, 0
  la s1, counter
1:
  addi s0, s0, 1
  sw s0, 0(s1)
  mv a0, s0
  call tick
  li t0, 3
  blt s0, t0, 1b
  PUTS "gdbtarget done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  .globl tick
tick:
  slli a0, a0, 4
  addi a0, a0, 7
  ret

  .data
  .globl counter
counter:
  .word 0
