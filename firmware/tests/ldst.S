/* rv32ui spirit: byte, halfword and word loads (sign and zero extension) and stores at
 * every offset, including the misaligned ones QEMU 7.2 performs without trapping, and a
 * misaligned word that straddles a page boundary. */
#include "common.h"

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  la s0, buf
  /* fill buf with 0x80 0x81 ... */
  li t0, 0
  li t1, 0x80
1:
  add t2, s0, t0
  sb t1, 0(t2)
  addi t1, t1, 0x11
  addi t0, t0, 1
  li t3, 16
  blt t0, t3, 1b
  /* loads at offsets 0..7 */
  li s1, 0
2:
  add s2, s0, s1
  lb s3, 0(s2)
  PHEX s3
  lbu s3, 0(s2)
  PHEX s3
  lh s3, 0(s2)
  PHEX s3
  lhu s3, 0(s2)
  PHEX s3
  lw s3, 0(s2)
  PHEX s3
  lw s3, -4(s2)
  PHEX s3
  NL
  addi s1, s1, 1
  li t0, 8
  blt s1, t0, 2b
  /* stores at offsets 0..7, reading back the whole 16 bytes */
  li s1, 0
3:
  add s2, s0, s1
  li t0, 0xa1b2c3d4
  sw t0, 0(s2)
  li t0, 0x5566
  sh t0, 8(s2)
  li t0, 0x77
  sb t0, 7(s2)
  lw s3, 0(s0)
  PHEX s3
  lw s3, 4(s0)
  PHEX s3
  lw s3, 8(s0)
  PHEX s3
  lw s3, 12(s0)
  PHEX s3
  NL
  addi s1, s1, 1
  li t0, 8
  blt s1, t0, 3b
  /* page-straddling misaligned word and halfword */
  la s2, page_end
  li t0, 0x11223344
  sw t0, -2(s2)
  lw s3, -2(s2)
  PHEX s3
  lhu s3, -1(s2)
  PHEX s3
  lw s3, -4(s2)
  PHEX s3
  lw s3, 0(s2)
  PHEX s3
  NL
  /* store then load through x0-relative negative offsets */
  la s2, buf
  addi s2, s2, 2047
  li t0, 0xcafe
  sh t0, -2047(s2)
  lhu s3, -2047(s2)
  CHECK s3, 0xcafe, 10
  PUTS "ldst done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  .data
  .align 4
buf:
  .space 64
  .align 12
  .space 4096 - 16
  .space 16
page_end:
  .space 16
