/* riscv-tests style exit through Spike's HTIF: an ELF that defines `tohost` ends the run
 * by writing (code << 1) | 1 there. QEMU's virt has no HTIF, so this test is minivm-only:
 * it exits with status 3 through tohost, never reaching the finisher. */
#include "common.h"
  .text
  .globl main
main:
  PUTS "htif\n"
  la t0, tohost
  li t1, (3 << 1) | 1
  sw t1, 0(t0)
  sw zero, 4(t0)
1:
  j 1b

  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
tohost: .dword 0
  .align 6
  .globl fromhost
fromhost: .dword 0
