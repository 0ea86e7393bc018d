/* Boot protocol (QEMU 7.2 -bios none -kernel): the reset vector at 0x1000 enters at
 * 0x80000000 in M-mode with a0 = hartid, a1 = DTB address, a2 = &fw_dynamic_info; prints
 * them, the fw_dynamic_info words and the DTB magic, plus the reset vector itself. */
#include "common.h"
  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  mv s0, a0
  mv s1, a1
  mv s2, a2
  PHEX s0
  PHEX s1
  PHEX s2
  NL
  lw s3, 0(s2)
  PHEX s3
  lw s3, 4(s2)
  PHEX s3
  lw s3, 8(s2)
  PHEX s3
  lw s3, 12(s2)
  PHEX s3
  lw s3, 16(s2)
  PHEX s3
  lw s3, 20(s2)
  PHEX s3
  NL
  lw s3, 0(s1)
  PHEX s3
  csrr s3, mstatus
  PHEX s3
  csrr s3, misa
  PHEX s3
  NL
  li s4, 0x1000
  li s5, 0
1:
  lw s3, 0(s4)
  PHEX s3
  addi s4, s4, 4
  addi s5, s5, 1
  li t0, 10
  blt s5, t0, 1b
  NL
  PUTS "boot done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret
