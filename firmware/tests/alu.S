/* rv32ui/rv32um spirit: every register-register and register-immediate ALU and M
 * instruction over a table of boundary values, results printed for comparison with QEMU,
 * plus self-checks of the corner cases the spec fixes (division by zero, overflow). */
#include "common.h"
#define NVALUES 16

.macro RR op
  \op s5, s3, s4
  PHEX s5
.endm

.macro RI op, imm
  \op s5, s3, \imm
  PHEX s5
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  la s0, values
  li s6, NVALUES
  li s1, 0
1:
  li s2, 0
2:
  slli t0, s1, 2
  add t0, s0, t0
  lw s3, 0(t0)
  slli t0, s2, 2
  add t0, s0, t0
  lw s4, 0(t0)
  RR add
  RR sub
  RR sll
  RR slt
  RR sltu
  RR xor
  RR srl
  RR sra
  RR or
  RR and
  NL
  RR mul
  RR mulh
  RR mulhsu
  RR mulhu
  RR div
  RR divu
  RR rem
  RR remu
  NL
  addi s2, s2, 1
  blt s2, s6, 2b
  /* immediates against value i */
  RI addi, 0
  RI addi, -1
  RI addi, 2047
  RI addi, -2048
  RI slti, 0
  RI slti, -1
  RI slti, 2047
  RI sltiu, -1
  RI sltiu, 1
  RI xori, -1
  RI xori, 0x555
  RI ori, -2048
  RI andi, 0x7f0
  RI andi, -16
  NL
  RI slli, 0
  RI slli, 1
  RI slli, 31
  RI srli, 0
  RI srli, 4
  RI srli, 31
  RI srai, 0
  RI srai, 4
  RI srai, 31
  NL
  addi s1, s1, 1
  blt s1, s6, 1b

  lui s5, 0xfffff
  PHEX s5
  lui s5, 0x80000
  PHEX s5
  auipc s5, 0
  la t0, main
  sub s5, s5, t0
  PHEX s5
  NL
  /* x0 stays zero whatever is written to it */
  li t0, 5
  add x0, t0, t0
  addi x0, x0, 7
  lui x0, 0x12345
  mv s5, x0
  CHECK s5, 0, 10

  /* Division corner cases fixed by the M spec (table 7.1) */
  li s3, 0x80000000
  li s4, -1
  div s5, s3, s4
  CHECK s5, 0x80000000, 11
  rem s5, s3, s4
  CHECK s5, 0, 12
  li s4, 0
  div s5, s3, s4
  CHECK s5, -1, 13
  divu s5, s3, s4
  CHECK s5, -1, 14
  rem s5, s3, s4
  CHECK s5, 0x80000000, 15
  remu s5, s3, s4
  CHECK s5, 0x80000000, 16
  li s3, -7
  li s4, 2
  div s5, s3, s4
  CHECK s5, -3, 17
  rem s5, s3, s4
  CHECK s5, -1, 18
  li s3, 0xffffffff
  li s4, 0xffffffff
  mulhu s5, s3, s4
  CHECK s5, 0xfffffffe, 19
  mulh s5, s3, s4
  CHECK s5, 0, 20
  mulhsu s5, s3, s4
  CHECK s5, 0xffffffff, 21
  PUTS "alu done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  .data
  .align 2
values:
  .word 0, 1, 2, -1, -2, 0x7fffffff, 0x80000000, 0x80000001, 0x12345678, 0xfedcba98, 31, 32, 0x55555555, 0xaaaaaaaa, 0x0000ffff, 0xffff0000

