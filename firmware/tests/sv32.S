/* rv32si spirit: S-mode with Sv32 paging. Permission checks (R/W/X, U with SUM, MXR),
 * reserved encodings (W without R, misaligned megapage, pointer at level 0), A and D set
 * by the hardware walk as QEMU does, page faults delegated to S, a U-mode excursion,
 * SFENCE.VMA after a PTE change, MPRV from M, and TVM/TSR/TW traps. */
#include "common.h"
#define V 1
#define R 2
#define W 4
#define X 8
#define U 16
#define A 64
#define D 128
#define TESTVA 0x40000000

/* l2[index] = PTE for physical page `sym` with `flags` */
.macro MAP4K index, sym, flags
  la t0, \sym
  srli t0, t0, 2
  ori t0, t0, \flags
  la t1, l2
  li t2, \index * 4
  add t1, t1, t2
  sw t0, 0(t1)
.endm

/* root[index] = megapage PTE for physical address `pa` */
.macro MAPMEGA index, pa, flags
  li t0, (\pa >> 2) | \flags
  la t1, root
  li t2, \index * 4
  add t1, t1, t2
  sw t0, 0(t1)
.endm

.macro SLOAD va
  li s6, \va
  li s5, 0x5a5a5a5a
  lw s5, 0(s6)
  PHEX s5
.endm

.macro PTE index
  la t0, l2
  lw s5, \index * 4(t0)
  srli s5, s5, 0
  andi s5, s5, 0xff
  PHEX s5
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  /* page contents */
  la t0, page0
  li t1, 0x11111111
  sw t1, 0(t0)
  la t0, page1
  li t1, 0x22222222
  sw t1, 0(t0)
  la t0, page3
  li t1, 0x33333333
  sw t1, 0(t0)
  MAPMEGA 0x200, 0x80000000, V|R|W|X|A|D
  MAPMEGA 0x040, 0x10000000, V|R|W|A|D
  MAPMEGA 0x180, 0x80000000, V|R|W|X|U|A|D
  MAPMEGA 0x101, 0x80001000, V|R|W|A|D
  la t0, l2
  srli t0, t0, 2
  ori t0, t0, V
  la t1, root
  sw t0, 0x100 * 4(t1)
  MAP4K 0, page0, V|R|W
  MAP4K 1, page1, V|R|A|D
  MAP4K 2, xpage, V|X|A
  MAP4K 3, page3, V|R|W|U|A|D
  MAP4K 5, page1, V|W|A|D
  la t0, l2b
  srli t0, t0, 2
  ori t0, t0, V
  la t1, l2
  sw t0, 7 * 4(t1)
  MAP4K 8, page0, V|R|W|X|A|D
  /* delegate U ecall and page faults to S */
  li t0, (1 << 8) | (1 << 12) | (1 << 13) | (1 << 15)
  csrw medeleg, t0
  la t0, s_handler
  csrw stvec, t0
  la t0, root
  srli t0, t0, 12
  li t1, 0x80000000
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  la t0, s_main
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x0800
  csrs mstatus, t0
  mret
after_s:
  NL
  /* MPRV: M-mode loads and stores translated as S */
  li t0, (1 << 17) | 0x0800
  csrs mstatus, t0
  li s6, TESTVA
  lw s7, 0(s6)
  li s6, TESTVA + 0x4000
  li s5, 0x5a5a5a5a
  lw s5, 0(s6)
  /* (the trap's mret left MPP = U: no data access until MPRV is off) */
  li t0, 1 << 17
  csrc mstatus, t0
  PHEX s7
  PHEX s5
  NL
  /* TVM, TSR, TW make satp, sfence.vma, sret and wfi illegal in S */
  li t0, (1 << 20) | (1 << 21) | (1 << 22)
  csrs mstatus, t0
  la t0, s_trapped
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x0800
  csrs mstatus, t0
  mret
after_s2:
  li t0, (1 << 20) | (1 << 21) | (1 << 22)
  csrc mstatus, t0
  csrw satp, zero
  csrw medeleg, zero
  NL
  PUTS "sv32 done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

s_main:
  /* A and D: a load sets A, a store sets D */
  PTE 0
  SLOAD TESTVA
  PTE 0
  li s6, TESTVA
  li t0, 0x44
  sw t0, 0(s6)
  PTE 0
  NL
  /* read-only page: loads work, stores fault */
  SLOAD TESTVA + 0x1000
  li s6, TESTVA + 0x1000
  sw zero, 0(s6)
  /* execute-only page: loads fault unless MXR; it executes */
  SLOAD TESTVA + 0x2000
  li t0, 1 << 19
  csrs sstatus, t0
  SLOAD TESTVA + 0x2000
  csrc sstatus, t0
  li t0, TESTVA + 0x2000
  jalr ra, 0(t0)
  NL
  /* user page from S: faults unless SUM, and never executes */
  SLOAD TESTVA + 0x3000
  li t0, 1 << 18
  csrs sstatus, t0
  SLOAD TESTVA + 0x3000
  li t0, TESTVA + 0x3000
  jalr ra, 0(t0)
  li t0, 1 << 18
  csrc sstatus, t0
  NL
  /* invalid, W-only, misaligned megapage, pointer at level 0 */
  SLOAD TESTVA + 0x4000
  SLOAD TESTVA + 0x5000
  SLOAD 0x40400000
  SLOAD TESTVA + 0x7000
  /* a page without X */
  li t0, TESTVA + 0x1000
  jalr ra, 0(t0)
  /* misaligned access straddling into an unmapped page */
  li s6, TESTVA + 0x3ffe
  li t0, 1 << 18
  csrs sstatus, t0
  lw s5, 0(s6)
  sw s5, 0(s6)
  csrc sstatus, t0
  NL
  /* remap page 0 to page 1's frame; sfence.vma makes the change visible */
  la t0, page1
  srli t0, t0, 2
  ori t0, t0, V|R|W|A|D
  la t1, l2
  sw t0, 0(t1)
  sfence.vma
  SLOAD TESTVA
  li t0, TESTVA
  sfence.vma t0, zero
  SLOAD TESTVA
  NL
  /* U mode: user page works, supervisor page faults, then ecall back */
  la t0, u_code
  li t1, 0x80000000
  sub t0, t0, t1
  li t1, 0x60000000
  add t0, t0, t1
  csrw sepc, t0
  li t0, 0x100
  csrc sstatus, t0
  sret
s_after_u:
  la t0, page3
  lw s5, 4(t0)
  PHEX s5
  lw s5, 8(t0)
  PHEX s5
  NL
  ecall
  j after_s

s_trapped:
  csrr s5, satp
  csrw satp, zero
  sfence.vma
  wfi
  la t0, 1f
  csrw sepc, t0
  sret
1:
  ecall
  j after_s2

u_code:
  li t0, TESTVA + 0x3000
  lw t1, 0(t0)
  sw t1, 4(t0)
  li t0, TESTVA
  lw t1, 0(t0)
  li t2, 0x77
  li t0, TESTVA + 0x3000
  sw t2, 8(t0)
  ecall

/* S-mode handler: print "S scause sepc stval"; skip the instruction, or return to ra for
 * fetch faults, or to s_after_u (in S) for ecall from U. */
  .align 2
s_handler:
  csrw sscratch, sp
  la sp, s_stack_top
  addi sp, sp, -32
  sw ra, 0(sp)
  sw t0, 4(sp)
  sw t1, 8(sp)
  sw t2, 12(sp)
  sw t4, 16(sp)
  sw t5, 20(sp)
  sw t6, 24(sp)
  sw a0, 28(sp)
  PUTS "S "
  csrr a0, scause
  call puthex
  csrr a0, sepc
  call puthex
  csrr a0, stval
  call puthex
  csrr t0, scause
  li t1, 12
  bne t0, t1, 1f
  lw t0, 0(sp)
  csrw sepc, t0
  j 3f
1:
  li t1, 8
  bne t0, t1, 2f
  la t0, s_after_u
  csrw sepc, t0
  li t0, 0x100
  csrs sstatus, t0
  j 3f
2:
  csrr t0, sepc
  addi t0, t0, 4
  csrw sepc, t0
3:
  lw ra, 0(sp)
  lw t0, 4(sp)
  lw t1, 8(sp)
  lw t2, 12(sp)
  lw t4, 16(sp)
  lw t5, 20(sp)
  lw t6, 24(sp)
  lw a0, 28(sp)
  csrr sp, sscratch
  sret

  .align 12
xpage:
  ret

  .data
  .align 12
root: .space 4096
l2: .space 4096
l2b: .space 4096
page0: .space 4096
page1: .space 4096
page3: .space 4096
  .space 1024
s_stack_top:
