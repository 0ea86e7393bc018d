/* rv32ui spirit: conditional branches over boundary value pairs (a bit mask of which were
 * taken), JAL/JALR link values and targets, JALR clearing bit 0 of the target. */
#include "common.h"
#define NVALUES 8

.macro BR op, bit
  \op s3, s4, 1f
  j 2f
1:
  ori s5, s5, \bit
2:
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  la s0, values
  li s1, 0
3:
  li s2, 0
4:
  slli t0, s1, 2
  add t0, s0, t0
  lw s3, 0(t0)
  slli t0, s2, 2
  add t0, s0, t0
  lw s4, 0(t0)
  li s5, 0
  BR beq, 1
  BR bne, 2
  BR blt, 4
  BR bge, 8
  BR bltu, 16
  BR bgeu, 32
  PHEX s5
  addi s2, s2, 1
  li t0, NVALUES
  blt s2, t0, 4b
  NL
  addi s1, s1, 1
  li t0, NVALUES
  blt s1, t0, 3b

  /* JAL links pc+4 */
  jal s5, 5f
5:
  la t0, 5b
  sub s5, s5, t0
  CHECK s5, 0, 10
  /* JALR with an odd target: bit 0 is cleared */
  la t0, 6f
  addi t0, t0, 1
  jalr s6, 0(t0)
  EXIT 11
6:
  la t0, 6b
  addi t0, t0, -4
  sub s6, s6, t0
  PHEX s6
  /* JALR with rd == rs1: target computed from the old value */
  la t1, 7f
  jalr t1, 0(t1)
  EXIT 12
7:
  la t0, 7b
  sub t1, t1, t0
  PHEX t1
  /* backward branch loop */
  li s5, 0
  li t0, 10
8:
  addi s5, s5, 3
  addi t0, t0, -1
  bnez t0, 8b
  PHEX s5
  NL
  PUTS "branch done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  .data
  .align 2
values:
  .word 0, 1, -1, 0x7fffffff, 0x80000000, 2, -2, 0x80000001
