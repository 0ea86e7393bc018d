/* Smallest test: print a string and a number, then pass. */
#include "common.h"
  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  PUTS "hello from minivm tests\n"
  li s0, 0x1234abcd
  PHEX s0
  NL
  lw ra, 0(sp)
  addi sp, sp, 16
  ret
