/* rv32ua spirit: every AMO over value pairs (old value and new memory), the LR/SC rules
 * as QEMU implements them (a reservation is an address plus the value LR saw; any SC
 * clears it; a trap clears it), and misaligned LR/SC/AMO traps. */
#include "common.h"
#define NVALUES 6

.macro AMO op
  sw s3, 0(s0)
  \op s5, s4, (s0)
  PHEX s5
  lw s5, 0(s0)
  PHEX s5
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  la s0, word
  la s7, values
  li s1, 0
1:
  li s2, 0
2:
  slli t0, s1, 2
  add t0, s7, t0
  lw s3, 0(t0)
  slli t0, s2, 2
  add t0, s7, t0
  lw s4, 0(t0)
  AMO amoswap.w
  AMO amoadd.w
  AMO amoxor.w
  AMO amoand.w
  AMO amoor.w
  NL
  AMO amomin.w
  AMO amomax.w
  AMO amominu.w
  AMO amomaxu.w.aqrl
  NL
  addi s2, s2, 1
  li t0, NVALUES
  blt s2, t0, 2b
  addi s1, s1, 1
  li t0, NVALUES
  blt s1, t0, 1b

  /* LR then SC succeeds and stores */
  li t0, 7
  sw t0, 0(s0)
  lr.w s3, (s0)
  li t1, 8
  sc.w s5, t1, (s0)
  PHEX s3
  PHEX s5
  lw s3, 0(s0)
  PHEX s3
  /* a second SC fails: the first cleared the reservation */
  sc.w s5, t1, (s0)
  PHEX s5
  /* SC to another address than LR's fails and does not store */
  lr.w s3, (s0)
  la s6, word2
  sc.w s5, t1, (s6)
  PHEX s5
  lw s3, 0(s6)
  PHEX s3
  NL
  /* a plain store of a different value between LR and SC */
  lr.w s3, (s0)
  li t0, 99
  sw t0, 0(s0)
  sc.w s5, t1, (s0)
  PHEX s5
  /* a plain store of the same value between LR and SC */
  lr.w s3, (s0)
  sw s3, 0(s0)
  sc.w s5, t1, (s0)
  PHEX s5
  /* a trap between LR and SC */
  lr.w s3, (s0)
  ecall
  sc.w s5, t1, (s0)
  PHEX s5
  NL
  /* misaligned: LR -> load misaligned, SC with reservation and AMO -> store/AMO misaligned,
     SC without reservation -> just fails */
  addi s6, s0, 2
  lr.w s5, (s6)
  sc.w s5, t1, (s6)
  PHEX s5
  NL
  lr.w s3, (s0)
  addi s6, s0, 0
  addi s6, s6, 1
  sc.w s5, t1, (s6)
  PHEX s5
  NL
  addi s6, s0, 1
  amoadd.w s5, t1, (s6)
  amoswap.w s5, t1, (s6)
  /* LR/SC on the same address from an AMO-modified word */
  lr.w s3, (s0)
  amoadd.w s5, t1, (s0)
  sc.w s5, t1, (s0)
  PHEX s5
  NL
  PUTS "amo done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  .data
  .align 3
word: .word 0
word2: .word 0x1234
values:
  .word 0, 1, -1, 0x7fffffff, 0x80000000, 0x12345678
