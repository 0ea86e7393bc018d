/* Harness for the random-instruction differential test (test/cpu/differential.test.ts).
 * Not a conformance test: the generator places programs at PROGRAMS and each program
 * calls `rand_begin` first (prints "P<n>", fills the data area from an LCG seeded by n)
 * and `rand_dump` last (prints every register saved at rand_regs and a checksum of the
 * data area). The M-mode trap handler from runtime.S reports and skips traps.
 * rand_begin takes the privilege to run the program in (a0 = 3, 1 or 0). For S and U it
 * builds an Sv32 page table (identity megapages for RAM and the UART, plus an alias window
 * at 0x40000000 onto the data area's page with one permission case per 4 KiB page), turns
 * paging on and mrets to its caller in that mode. A program ends with ECALL followed by
 * the marker word 0x0000000b, which brings it back to M for the register dump. */
#define V 1
#define R 2
#define W 4
#define X 8
#define U 16
#define A 64
#define D 128
#include "common.h"
#define PROGRAMS 0x80100000

  .text
  .globl main
main:
  la t0, rand_counter
  sw zero, 0(t0)
  la t0, ecall_marker_mode
  li t1, 1
  sw t1, 0(t0)
  li t0, PROGRAMS
  jr t0

  .globl rand_begin
rand_begin:
  /* MIE and MPIE off: an mret that set them must not let a later program be interrupted */
  li t0, 0x88
  csrc mstatus, t0
  mv s11, ra
  mv s10, a0
  la sp, rand_stack_top
  PUTS "P"
  la t0, rand_counter
  lw a0, 0(t0)
  call puthex
  NL
  la t0, rand_counter
  lw t1, 0(t0)
  addi t2, t1, 1
  sw t2, 0(t0)
  /* data area: 64 words from x = x * 1664525 + 1013904223, seeded with n */
  la t0, rand_data
  li t2, 64
  li t3, 1664525
  li t4, 1013904223
1:
  mul t1, t1, t3
  add t1, t1, t4
  sw t1, 0(t0)
  addi t0, t0, 4
  addi t2, t2, -1
  bnez t2, 1b
  li t0, 3
  bne s10, t0, 2f
  mv ra, s11
  ret
2:
  /* Below M, nothing may interrupt or be delegated: every trap goes to runtime.S's
     handler, and interrupt timing is not part of what the test compares. */
  csrw mie, zero
  csrw mideleg, zero
  csrw medeleg, zero
  li t0, 0x2666
  csrc mip, t0
  /* s9 = U bit for the mappings the program's own mode needs */
  li s9, 0
  bnez s10, 3f
  li s9, U
3:
  la t0, rand_root
  li t1, 2048
4:
  sw zero, 0(t0)
  addi t0, t0, 4
  addi t1, t1, -1
  bnez t1, 4b
  la s8, rand_root
  /* root[0x200]: RAM megapage at 0x80000000 */
  li t1, (0x80000000 >> 2) | V | R | W | X | A | D
  or t1, t1, s9
  li t0, 0x200 * 4
  add t0, t0, s8
  sw t1, 0(t0)
  /* root[0x40]: the UART's megapage */
  li t1, (0x10000000 >> 2) | V | R | W | A | D
  or t1, t1, s9
  sw t1, 0x40 * 4(s8)
  /* root[0x100] -> rand_l2 */
  la t1, rand_l2
  srli t1, t1, 2
  ori t1, t1, V
  li t0, 0x100 * 4
  add t0, t0, s8
  sw t1, 0(t0)
  /* the alias window: l2[k] -> the data page with permission case k (U flipped for U mode) */
  la t2, rand_data
  srli t2, t2, 12
  slli t2, t2, 10
  la t0, rand_l2
  la t3, alias_flags
  li t4, 8
5:
  lw t1, 0(t3)
  beqz t1, 6f
  xor t1, t1, s9
  or t1, t1, t2
6:
  sw t1, 0(t0)
  addi t0, t0, 4
  addi t3, t3, 4
  addi t4, t4, -1
  bnez t4, 5b
  srli t0, s8, 12
  li t1, 0x80000000
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li t0, 0x1800 | (1 << 17)
  csrc mstatus, t0
  slli t0, s10, 11
  csrs mstatus, t0
  csrw mepc, s11
  mret

  .globl rand_dump
rand_dump:
  la sp, rand_stack_top
  PUTS "R "
  la s0, rand_regs
  li s1, 31
1:
  lw a0, 0(s0)
  call puthex
  addi s0, s0, 4
  addi s1, s1, -1
  bnez s1, 1b
  /* checksum of the data area: rotate left 5 and xor each word */
  la s0, rand_data
  li s1, 64
  li s2, 0
2:
  lw t0, 0(s0)
  slli t1, s2, 5
  srli s2, s2, 27
  or s2, s2, t1
  xor s2, s2, t0
  addi s0, s0, 4
  addi s1, s1, -1
  bnez s1, 2b
  mv a0, s2
  call puthex
  NL
  lw ra, 0(sp)
  /* return to the saved ra (x1's dumped value is in rand_regs[0]; the real return is in
     rand_ret, written by the epilogue) */
  la t0, rand_ret
  lw t0, 0(t0)
  jr t0

  .globl rand_finish
rand_finish:
  PUTS "random done\n"
  EXIT 0

  .data
  .align 2
alias_flags:
  .word V|R|W|A|D, V|R|A|D, V|X|A, V|R|W, 0, V|W|A|D, V|R|W|U|A|D, V|R|W|A
  .align 12
rand_root: .space 4096
rand_l2: .space 4096
  .align 4
  .globl rand_regs
rand_regs: .space 128
  .globl rand_ret
rand_ret: .word 0
rand_counter: .word 0
  .align 6
  .globl rand_data
rand_data: .space 256
  .space 1024
rand_stack_top:
