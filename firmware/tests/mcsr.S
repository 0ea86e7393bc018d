/* rv32mi spirit: machine-mode CSRs (what sticks when all ones or zeros are written, WARL
 * fields, read-only and missing CSRs), ECALL/EBREAK, illegal encodings with mtval = the
 * instruction, and U-mode counter access controlled by mcounteren. The trap handler prints
 * "T mcause mepc mtval" for every trap. */
#include "common.h"

/* Write all ones then read back, write zero then read back, restore. */
.macro PROBE csr
  csrr s4, \csr
  li t0, -1
  csrw \csr, t0
  csrr s5, \csr
  PHEX s5
  csrw \csr, zero
  csrr s5, \csr
  PHEX s5
  csrw \csr, s4
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  csrr s5, misa
  PHEX s5
  csrr s5, mhartid
  PHEX s5
  csrr s5, mstatus
  PHEX s5
  csrr s5, mie
  PHEX s5
  csrr s5, medeleg
  PHEX s5
  csrr s5, mideleg
  PHEX s5
  NL
  PROBE mstatus
  PROBE medeleg
  PROBE mideleg
  PROBE mie
  NL
  PROBE mscratch
  PROBE mepc
  PROBE mcause
  PROBE mtval
  NL
  PROBE mcounteren
  PROBE scounteren
  PROBE sscratch
  PROBE sepc
  NL
  PROBE scause
  PROBE stval
  PROBE satp
  PROBE sstatus
  NL
  PROBE mstatush
  PROBE pmpaddr1
  PROBE pmpaddr15
  NL
  PROBE menvcfg
  PROBE senvcfg
  PROBE 0x31a
  PROBE mcountinhibit
  NL
  PROBE tselect

  PROBE mcycleh
  PROBE 0xb03
  NL
  csrr s5, marchid
  PHEX s5
  csrr s5, mimpid
  PHEX s5
  csrr s5, mvendorid
  PHEX s5
  csrr s5, 0xf15
  PHEX s5
  csrr s5, 0x323
  PHEX s5
  NL
  /* counters beyond QEMU's 16 programmable ones */
  csrr s5, 0xb13
  csrr s5, 0xb93
  csrr s5, 0x333
  csrr s5, 0xc13
  csrr s5, 0xc12
  csrr s5, 0xc92
  NL
  /* mip: only SSIP/STIP/SEIP are writable by software (MTIP is the CLINT's, still set
     because mtimecmp resets to 0). */
  li s6, 0x222
  csrs mip, s6
  csrr s5, mip
  PHEX s5
  csrc mip, s6
  csrr s5, mip
  PHEX s5
  /* sie/sip views depend on mideleg */
  li t0, -1
  csrw mie, t0
  csrw mideleg, t0
  csrr s5, sie
  PHEX s5
  csrw sie, zero
  csrr s5, mie
  PHEX s5
  csrs sip, t0
  csrr s5, sip
  PHEX s5
  csrr s5, mip
  PHEX s5
  csrw mip, zero
  csrw mie, zero
  csrw mideleg, zero
  NL
  /* mtvec/stvec: modes 2 and 3 are not taken */
  csrr s4, mtvec
  li t0, 0x80000102
  csrw mtvec, t0
  csrr s5, mtvec
  PHEX s5
  li t0, 0x80000101
  csrw mtvec, t0
  csrr s5, mtvec
  PHEX s5
  csrw mtvec, s4
  li t0, 0x80000003
  csrw stvec, t0
  csrr s5, stvec
  PHEX s5
  li t0, 0x80000005
  csrw stvec, t0
  csrr s5, stvec
  PHEX s5
  /* mstatus.MPP = 2 is reserved */
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x1000
  csrs mstatus, t0
  csrr s5, mstatus
  PHEX s5
  li t0, 0x1800
  csrc mstatus, t0
  NL

  /* CSRs that do not exist or are read-only */
  csrr s5, 0x7c0
  csrw mvendorid, zero
  csrr s5, mvendorid
  PHEX s5
  csrs mhartid, zero
  csrrs s5, mimpid, x0
  csrw 0x5c0, zero
  csrr s5, 0x015
  csrr s5, 0x7a0
  NL
  /* the immediate forms */
  csrwi mscratch, 21
  csrsi mscratch, 10
  csrci mscratch, 1
  csrrwi s5, mscratch, 0
  PHEX s5
  csrrs s5, mscratch, zero
  PHEX s5
  NL

  /* MSIP pending and enabled (but MIE clear), so WFI below does not sleep */
  li t0, 0x2000000
  li t1, 1
  sw t1, 0(t0)
  li t0, 8
  csrs mie, t0
  /* ECALL and EBREAK from M */
  ecall
  ebreak
  /* illegal encodings: mtval holds the instruction */
  .word 0x00000000
  .word 0xffffffff
  .word 0x02009093 /* slli x1, x1, 32 (shamt[5] set) */
  .word 0x4000d093 /* srai-like with bad funct7 bit pattern 0x20 -> legal? */
  .word 0x4000c0b3 /* xor with funct7 0x20 */
  .word 0x0200f0b3 /* remu ok */
  .word 0x0000b083 /* ld (f3 = 3) */
  .word 0x0000e083 /* lwu */
  .word 0x0010b023 /* sd */
  .word 0x00002063 /* branch f3 = 2 */
  .word 0x000010e7 /* jalr f3 = 1 */
  .word 0x0000200f /* fence f3 = 2 */
  .word 0x0000300f
  .word 0x0000302f /* amo f3 = 3 */
  .word 0x1800202f /* amo funct5 0x03 = sc.w ok? */
  .word 0x5000202f /* amo funct5 0x0a */
  .word 0x1020202f /* lr.w with rs2 != 0 */
  .word 0x00004073 /* system f3 = 4 */
  .word 0x00200073 /* uret */
  .word 0x7b200073 /* dret */
  .word 0x10500073 /* wfi with MSIP pending below */
  .word 0x12000073 /* sfence.vma zero, zero */
  .word 0x12008073 /* sfence.vma with rd bits ... */
  .word 0x00000007 /* flw: no F */
  .word 0x0000007b
  .word 0x00100013 /* addi x0, x0, 1 (a hint) */
  .word 0x0010000f /* fence with fm bits */
  .word 0x8330000f /* fence.tso */
  .word 0x0100000f /* pause */
  .word 0x00001f0f /* fence.i with rd != 0 */
  NL
  li t0, 0x2000000
  sw zero, 0(t0)
  csrw mie, zero

  /* U-mode counters: denied with mcounteren = 0, allowed with it set. */
  la t0, umode
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  mret
umode:
  rdcycle s5
  rdinstret s5
  rdtime s5
  rdcycleh s5
  csrr s5, mstatus
  csrr s5, sstatus
  ecall
  NL
  li t0, 7
  csrw mcounteren, t0
  csrw scounteren, t0
  la t0, umode2
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  mret
umode2:
  rdcycle s5
  rdtime s5
  rdinstreth s5
  csrr s5, 0xc03
  wfi
  ecall
  NL
  csrw mcounteren, zero
  csrw scounteren, zero
  /* mret with MPP = S lands in S: ecall there is cause 9 */
  la t0, smode
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x0800
  csrs mstatus, t0
  mret
smode:
  rdtime s5
  csrr s5, mstatus
  csrr s5, sstatus
  csrr s5, satp
  la t0, 1f
  csrw sepc, t0
  sret
1:
  csrr s5, sstatus
  mret
  ecall
  NL
  PUTS "mcsr done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret
