/* rv32mi spirit, illegal guest behaviour: loads, stores and fetches that hit holes in the
 * physical map, wrong access sizes for devices, writes to the boot ROM, a jump into a
 * device, misaligned jump targets, and mret to a misaligned mepc. Every trap is printed. */
#include "common.h"

.macro LOAD_AT addr
  li s6, \addr
  li s5, 0x5a5a5a5a
  lw s5, 0(s6)
  PHEX s5
.endm

.macro FETCH_AT addr
  la t0, 1f
  la t1, trap_redirect
  sw t0, 0(t1)
  li t0, \addr
  jalr ra, 0(t0)
1:
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  LOAD_AT 0x00000000
  LOAD_AT 0x00000ffc
  LOAD_AT 0x00001000
  LOAD_AT 0x0000fffc
  LOAD_AT 0x00010000
  LOAD_AT 0x00100000
  LOAD_AT 0x00101020
  LOAD_AT 0x00101024
  NL
  LOAD_AT 0x00102000
  LOAD_AT 0x02000000
  LOAD_AT 0x0200bffc
  LOAD_AT 0x0200c000
  LOAD_AT 0x0c000000
  LOAD_AT 0x0c600000
  LOAD_AT 0x10000008
  LOAD_AT 0x10001000
  NL
  LOAD_AT 0x10001200
  LOAD_AT 0x10009000
  LOAD_AT 0x88000000
  LOAD_AT 0xfffffffc
  NL
  /* byte and halfword accesses to 32-bit-only devices */
  li s6, 0x0c000000
  lb s5, 0(s6)
  lh s5, 0(s6)
  sb zero, 0(s6)
  li s6, 0x02000000
  lbu s5, 0(s6)
  li s6, 0x00101000
  lhu s5, 0(s6)
  /* word access to the UART reads one byte register */
  li s6, 0x10000000
  lw s5, 4(s6)
  PHEX s5
  lw s5, 5(s6)
  PHEX s5
  NL
  /* stores to holes and to the ROM */
  li s6, 0x00000000
  sw zero, 0(s6)
  li s6, 0x88000000
  sh zero, 0(s6)
  li s6, 0x00001000
  li t0, 0x12345678
  sw t0, 0(s6)
  lw s5, 0(s6)
  PHEX s5
  li s6, 0x00100004
  sw t0, 0(s6)
  NL
  /* fetches from holes, the ROM tail and a device */
  FETCH_AT 0x00000000
  FETCH_AT 0x88000000
  FETCH_AT 0x00002000
  FETCH_AT 0x0c000000
  FETCH_AT 0x00100000
  FETCH_AT 0x10000000
  FETCH_AT 0x10001000
  FETCH_AT 0x10001008
  FETCH_AT 0x02000000
  NL
  /* misaligned jump targets (no C extension): the jump traps, nothing is linked */
  li ra, 0x11111111
  la t0, 2f
  addi t0, t0, 2
  jalr ra, 0(t0)
  PHEX ra
  NL
2:
  nop
  /* mret to a misaligned mepc */
  la t0, 3f
  addi t0, t0, 2
  csrw mepc, t0
  li t0, 0x1800
  csrs mstatus, t0
  la t0, 3f
  la t1, trap_redirect
  sw t0, 0(t1)
  mret
  nop
3:
  NL
  PUTS "faults done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret
