/* Interrupts (privileged spec 3.1.9, QEMU virt's CLINT and PLIC): machine software and
 * timer interrupts from the CLINT, priority when several are pending, WFI waking on a
 * pending interrupt, vectored mtvec, the UART's THRE interrupt through PLIC context 0
 * (claim/complete, threshold), and an S-mode timer delivered through mideleg. */
#include "common.h"
#define CLINT 0x2000000
#define MTIMECMP (CLINT + 0x4000)
#define MTIME (CLINT + 0xbff8)
#define PLIC 0xc000000

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  la t0, handler
  la t1, irq_handler
  sw t0, 0(t1)
  la t1, ecall_sets_stip
  li t0, 1
  sw t0, 0(t1)
  /* mtimecmp = far future, so MTIP drops */
  li t0, MTIMECMP
  li t1, -1
  sw t1, 4(t0)
  sw t1, 0(t0)
  csrr s5, mip
  PHEX s5
  /* MSIP and MTIP pending together: MSI is taken first */
  li t0, CLINT
  li t1, 1
  sw t1, 0(t0)
  li t0, MTIMECMP
  sw zero, 4(t0)
  sw zero, 0(t0)
  csrr s5, mip
  PHEX s5
  NL
  li t0, 0x88
  csrw mie, t0
  li s8, 0
  csrsi mstatus, 8
  /* both handled by now (handler clears the source) */
  csrci mstatus, 8
  PHEX s8
  NL
  /* WFI wakes for a timer interrupt; it is taken once MIE is set */
  li t0, MTIME
  lw t1, 0(t0)
  addi t1, t1, 1000
  li t0, MTIMECMP
  sw t1, 0(t0)
  sw zero, 4(t0)
  li t0, 0x80
  csrw mie, t0
  li s8, 0
  wfi
  csrr s5, mip
  andi s5, s5, 0x80
  PHEX s5
  csrsi mstatus, 8
  csrci mstatus, 8
  PHEX s8
  NL
  /* vectored mode: an interrupt enters at base + 4 * cause */
  csrr s9, mtvec
  la t0, vectors
  ori t0, t0, 1
  csrw mtvec, t0
  li t0, CLINT
  li t1, 1
  sw t1, 0(t0)
  li t0, 8
  csrw mie, t0
  li s8, 0
  csrsi mstatus, 8
  csrci mstatus, 8
  csrw mtvec, s9
  PHEX s8
  NL
  /* UART THRE interrupt through the PLIC: priority 1, enabled for context 0 */
  li t0, PLIC
  li t1, 1
  sw t1, 40(t0)            /* priority[10] */
  li t0, PLIC + 0x2000
  li t1, 1 << 10
  sw t1, 0(t0)             /* enable ctx 0 */
  li t0, PLIC + 0x200000
  sw zero, 0(t0)           /* threshold 0 */
  li t0, 0x800
  csrw mie, t0
  li t0, UART0
  li t1, 2
  sb t1, 1(t0)             /* IER.THRI: THR is empty, so the UART asserts its line */
  li t0, PLIC + 0x1000
  lw s5, 0(t0)
  PHEX s5                   /* pending bit 10 */
  csrr s5, mip
  PHEX s5
  li s8, 0
  csrsi mstatus, 8
  csrci mstatus, 8
  PHEX s8
  NL
  /* threshold 1 masks priority 1 */
  li t0, PLIC + 0x200000
  li t1, 1
  sw t1, 0(t0)
  li t0, UART0
  li t1, 2
  sb zero, 1(t0)
  sb t1, 1(t0)
  csrr s5, mip
  PHEX s5
  li t0, PLIC + 0x200004
  lw s5, 0(t0)              /* claim: nothing above threshold */
  PHEX s5
  li t0, UART0
  sb zero, 1(t0)
  li t0, PLIC + 0x200000
  sw zero, 0(t0)
  NL
  /* S-mode timer: STIP set by M software, delegated, taken in S via stvec */
  la t0, s_handler
  csrw stvec, t0
  li t0, 0x20
  csrw mideleg, t0
  csrw mie, t0
  la t0, smode
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x800
  csrs mstatus, t0
  li s8, 0
  mret
smode:
  csrsi sstatus, 2          /* SIE */
  /* the interrupt is not pending yet; ecall to M to raise it */
  ecall
  nop
  nop
  csrci sstatus, 2
  ecall
  li t0, 0x20
  csrc mip, t0
  PHEX s8
  csrw mideleg, zero
  csrw mie, zero
  NL
  PUTS "irq done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

/* called from trap_entry with ra saved; may use t0-t6, a0, a1 */
handler:
  mv s10, ra
  csrr a0, mcause
  call puthex
  csrr t0, mcause
  slli t0, t0, 1
  srli t0, t0, 1
  li t1, 3
  bne t0, t1, 1f
  li t0, CLINT
  sw zero, 0(t0)
  addi s8, s8, 1
  j 9f
1:
  li t1, 7
  bne t0, t1, 2f
  li t0, MTIMECMP
  li t1, -1
  sw t1, 4(t0)
  addi s8, s8, 16
  j 9f
2:
  li t1, 11
  bne t0, t1, 9f
  li t0, PLIC + 0x200004
  lw t1, 0(t0)              /* claim */
  mv a0, t1
  call puthex
  li t2, UART0
  sb zero, 1(t2)            /* IER = 0: line drops */
  sw t1, 0(t0)              /* complete */
  addi s8, s8, 256
9:
  mv ra, s10
  ret

  .align 6
vectors:
  j bad_vector
  j bad_vector
  j bad_vector
  j vec_msi
  .rept 12
  j bad_vector
  .endr
vec_msi:
  csrw mscratch, t0
  li t0, CLINT
  sw zero, 0(t0)
  addi s8, s8, 0x40
  csrr t0, mscratch
  mret
bad_vector:
  li a0, 50
  j exit

  .align 2
s_handler:
  csrr a0, scause
  call puthex
  addi s8, s8, 0x100
  li t0, 0x20
  csrc sip, t0              /* S cannot clear STIP: it stays pending ... */
  csrc sstatus, t0          /* ... so return with SIE off (SPIE = 0) */
  li t0, 0x100
  csrs sstatus, t0          /* return to S */
  sret
