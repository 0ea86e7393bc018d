/* NS16550A registers as QEMU models them: reset values, FIFO enable and IIR bits 7:6,
 * THRE interrupt identification and its clearing by an IIR read, divisor latch, scratch,
 * loopback receive (LSR.DR, RBR, overrun), modem status in loopback, and the goldfish RTC
 * and finisher register reads. */
#include "common.h"

.macro RD off
  lbu s5, \off(s0)
  sb s5, 0(s1)
  addi s1, s1, 1
.endm
/* print what RD collected (printing inside DLAB or loopback would go astray) */
.macro FLUSH
  la s2, results
97:
  bgeu s2, s1, 96f
  lbu s5, 0(s2)
  PHEX s5
  addi s2, s2, 1
  j 97b
96:
  li a0, '\n'
  call putc
  la s1, results
.endm
.macro WR off, val
  li t0, \val
  sb t0, \off(s0)
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  li s0, UART0
  la s1, results
  RD 1
  RD 2
  RD 3
  RD 4
  RD 5
  RD 6
  RD 7
  FLUSH
  /* THRE interrupt: enabling IER.THRI with an empty THR identifies THRI; reading IIR clears it */
  WR 1, 2
  RD 2
  RD 2
  WR 1, 0
  /* FIFO on */
  WR 2, 0xc7
  RD 2
  WR 1, 2
  RD 2
  RD 2
  WR 1, 0
  FLUSH
  /* divisor latch */
  WR 3, 0x83
  WR 0, 0x34
  WR 1, 0x12
  RD 0
  RD 1
  WR 3, 0x03
  RD 3
  WR 7, 0xa5
  RD 7
  FLUSH
  /* loopback: transmitted bytes come back */
  WR 4, 0x1f
  RD 6
  WR 0, 'x'
  RD 5
  WR 0, 'y'
  RD 5
  /* (IIR is not read with IER.RDI on here: whether QEMU's 4-character timeout has fired
     by then depends on host timing) */
  RD 2
  RD 0
  RD 5
  RD 0
  RD 5
  RD 0
  RD 5
  /* without FIFO, a second byte overruns */
  WR 2, 0
  RD 2
  WR 0, 'p'
  WR 0, 'q'
  RD 5
  RD 5
  RD 0
  RD 5
  WR 4, 0x08
  FLUSH
  /* goldfish RTC: time is nonzero and the high half changes rarely; alarm status reads 0 */
  li s3, 0x101000
  lw t1, 0(s3)
  lw s5, 4(s3)
  snez s5, s5
  PHEX s5
  lw s5, 0x10(s3)
  PHEX s5
  lw s5, 0x18(s3)
  PHEX s5
  /* finisher reads 0 */
  li t0, 0x100000
  lw s5, 0(t0)
  PHEX s5
  NL
  PUTS "uart done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  .data
results: .space 64
