/* rv32uc spirit, the C extension (unprivileged spec chapter 16): every RV32 compressed
 * instruction once with a self-check, link values of pc+2, 32-bit instructions at pc % 4 == 2,
 * jumps to 2-byte aligned targets, one 32-bit instruction straddling a page boundary (and a
 * PMP fault on its upper half), c.ebreak, and the reserved/F-only encodings that must be
 * illegal. Results are printed so that differential.test.ts compares them with QEMU. */
#include "common.h"

  .option norelax
  .option norvc

/* Expect an illegal instruction at the next half-word: resume at the label after it. */
.macro EXPECT_TRAP
  la t0, 1f
  la t1, trap_redirect
  sw t0, 0(t1)
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)

  /* CI/CIW/CB/CA arithmetic */
  .option rvc
  c.li a0, -7
  c.addi a0, 12
  c.lui a1, 0x12
  c.li a2, 31
  c.slli a2, 3
  c.mv a3, a2
  c.add a3, a0
  c.li s0, -16
  c.srli s0, 4
  c.li s1, -16
  c.srai s1, 2
  c.andi s1, 0x1d
  c.li a4, 0x15
  c.li a5, 0x0c
  c.mv a4, a4
  c.sub a4, a5
  c.xor a5, s1
  c.or s0, a5
  c.and s1, a4
  c.nop
  .option norvc
  CHECK a0, 5, 1
  CHECK a1, 0x12000, 2
  CHECK a2, 248, 3
  CHECK a3, 253, 4
  CHECK s0, 0x0fffffff, 5
  CHECK s1, 8, 6
  CHECK a4, 9, 7
  PHEX a0
  PHEX a1
  PHEX a2
  PHEX a3
  PHEX s0
  PHEX s1
  PHEX a4
  PHEX a5
  NL

  /* stack-pointer forms: c.addi16sp, c.addi4spn, c.lwsp, c.swsp, c.lw, c.sw */
  mv s2, sp
  la sp, buffer + 256
  .option rvc
  c.addi16sp sp, -96
  c.addi4spn s0, sp, 24
  c.li a0, 17
  c.swsp a0, 24(sp)
  c.lwsp a1, 24(sp)
  c.sw a1, 4(s0)
  c.lw a2, 4(s0)
  c.li a3, -1
  c.sw a3, 124(s0)
  c.lwsp a4, 148(sp)
  c.addi16sp sp, 496
  .option norvc
  la t0, buffer + 256 - 96 + 496
  CHECK a1, 17, 10
  CHECK a2, 17, 11
  CHECK a4, -1, 12
  sub a5, sp, t0
  CHECK a5, 0, 13
  la t0, buffer + 256 - 96
  sub a5, s0, t0
  CHECK a5, 24, 14
  mv sp, s2
  PHEX a1
  PHEX a4
  NL

  /* control transfer: c.j, c.jal (ra = pc + 2), c.jr, c.jalr, c.beqz, c.bnez */
  li s0, 0
  .option rvc
  c.j 1f
  c.addi s0, 1          /* skipped */
1:
  c.jal 2f
3:
  c.addi s0, 2
  c.j 4f
2:
  .option norvc
  la t0, 3b
  sub t1, ra, t0
  CHECK t1, 0, 20
  .option rvc
  c.jr ra
4:
  c.li a0, 0
  c.beqz a0, 5f
  c.addi s0, 4          /* skipped */
5:
  c.bnez a0, 6f
  c.addi s0, 8
6:
  .option norvc
  la t0, 7f
  .option rvc
  c.jalr t0
8:
  c.addi s0, 16
  c.j 9f
7:
  .option norvc
  la t1, 8b
  sub t1, ra, t1
  CHECK t1, 0, 21
  ret
9:
  CHECK s0, 26, 22
  PHEX s0
  NL

  /* 32-bit instructions at pc % 4 == 2, and jumps to 2-byte aligned targets */
  .balign 4
  .option rvc
  c.nop
  .option norvc
  auipc a0, 0           /* at an address == 2 (mod 4) */
  jal a1, 1f            /* also at 2 (mod 4): a1 = its pc + 4 */
1:
  sub a2, a1, a0
  CHECK a2, 8, 30
  la t0, 2f
  jalr a3, 0(t0)        /* 2f is 2-byte aligned: no misaligned-fetch trap with C */
  .balign 4
  .option rvc
  c.nop
2:
  .option norvc
  andi a4, a3, 3
  PHEX a2
  PHEX a4
  NL

  /* a 32-bit instruction whose upper half is on the next page */
  li a0, 40
  call straddle
  CHECK a0, 41, 40
  PHEX a0
  NL

  /* c.ebreak traps with mcause 3, mepc = its address, mtval 0 */
  EXPECT_TRAP
  .option rvc
  c.ebreak
  .option norvc
1:
  /* reserved and F/D-only encodings are illegal; QEMU reports the 16 bits in mtval */
  EXPECT_TRAP
  .2byte 0x0000         /* all zeros (c.addi4spn, nzuimm = 0) */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x0010         /* c.addi4spn a2, sp, 0 */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x4002         /* c.lwsp x0 */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x6101         /* c.addi16sp 0 */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x6501         /* c.lui a0, 0 */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x8002         /* c.jr x0 */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x9005         /* c.srli s0, 33: shamt[5] on RV32 */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x1512         /* c.slli a0, 36 */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x9c01         /* c.subw (RV64) */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x6000         /* c.flw */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x2002         /* c.fldsp */
  .2byte 0x0001
1:
  EXPECT_TRAP
  .2byte 0x8000         /* quadrant 0, funct3 100: reserved */
  .2byte 0x0001
1:
  /* HINTs are legal no-ops */
  .option rvc
  c.li zero, 5
  c.addi zero, 1
  c.mv zero, a0
  c.add zero, a0
  c.slli zero, 1
  .option norvc
  .2byte 0x6005         /* c.lui x0, 1 */
  .2byte 0x0001

  /* misa has C; mepc keeps bit 1 */
  csrr a0, misa
  PHEX a0
  li t0, 0x80001002
  csrw mepc, t0
  csrr a1, mepc
  PHEX a1
  NL

  /* the upper half of a straddling instruction on a page PMP denies to S: access fault with
     mepc = the instruction, mtval = its second half */
  la t0, straddle
  addi t0, t0, 2
  srli t0, t0, 2
  ori t0, t0, 0x1ff     /* NAPOT 4 KiB: the page after the straddle */
  csrw pmpaddr0, t0
  li t0, -1
  csrw pmpaddr1, t0
  li t0, 0x1f1b         /* entry 0: NAPOT R W, no X; entry 1: NAPOT R W X */
  csrw pmpcfg0, t0
  la t0, 1f
  la t1, trap_redirect
  sw t0, 0(t1)
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x0800
  csrs mstatus, t0      /* MPP = S */
  la t0, straddle
  csrw mepc, t0
  mret
1:
  ecall                 /* back to M (the handler's ECALL-from-S rule) */
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0

  PUTS "rv32uc done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  /* straddle sits in the last two bytes of a page */
  .balign 4096
  .fill 2047, 2, 0x0001
straddle:
  addi a0, a0, 1
  ret

  .data
  .balign 16
buffer:
  .fill 128, 4, 0
