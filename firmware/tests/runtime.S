/* The tests' startup code and library: stack, M-mode trap vector, UART print routines,
 * exit through the sifive_test finisher. Each test provides `main`. */
#include "common.h"

  .section .text.init
  .globl _start
_start:
  la sp, stack_top
  la t0, trap_entry
  csrw mtvec, t0
  csrw mscratch, zero
  /* One PMP entry covering everything, so that mret to S or U is allowed (QEMU 7.2 refuses
     it while no PMP entry is active). */
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  call main
  li a0, 0
  /* fall through */
  .globl exit
exit:
  li t0, FINISHER
  beqz a0, 1f
  slli a0, a0, 16
  li t1, 0x3333
  or a0, a0, t1
  sw a0, 0(t0)
  j .
1:
  li t1, 0x5555
  sw t1, 0(t0)
  j .

  .text
  .globl putc
putc:
  li t0, UART0
1:
  lbu t1, 5(t0)
  andi t1, t1, 0x20
  beqz t1, 1b
  sb a0, 0(t0)
  ret

  .globl puts
puts:
  mv t2, a0
  mv t6, ra
1:
  lbu a0, 0(t2)
  beqz a0, 2f
  call putc
  addi t2, t2, 1
  j 1b
2:
  mv ra, t6
  ret

  .globl puthex
puthex:
  mv t6, ra
  mv t2, a0
  li t5, 8
1:
  srli a0, t2, 28
  slli t2, t2, 4
  li t4, 10
  blt a0, t4, 2f
  addi a0, a0, 'a' - 10
  j 3f
2:
  addi a0, a0, '0'
3:
  call putc
  addi t5, t5, -1
  bnez t5, 1b
  li a0, ' '
  call putc
  mv ra, t6
  ret

/* M-mode trap handler: prints "T mcause mepc mtval", then resumes at trap_redirect if a
 * test set it (clearing it), else after the trapping instruction. Interrupts go to
 * irq_handler when a test installs one. All registers are preserved. */
  .align 2
  .globl trap_entry
trap_entry:
  csrw mscratch, sp
  la sp, trap_stack_top
  addi sp, sp, -64
  sw ra, 0(sp)
  sw t0, 4(sp)
  sw t1, 8(sp)
  sw t2, 12(sp)
  sw t3, 16(sp)
  sw t4, 20(sp)
  sw t5, 24(sp)
  sw t6, 28(sp)
  sw a0, 32(sp)
  sw a1, 36(sp)
  csrr t0, mcause
  bltz t0, 5f
  PUTS "T "
  csrr a0, mcause
  call puthex
  csrr a0, mepc
  call puthex
  csrr a0, mtval
  call puthex
  NL
  la t0, trap_redirect
  lw t1, 0(t0)
  beqz t1, 1f
  sw zero, 0(t0)
  csrw mepc, t1
  j 2f
1:
  csrr t1, mepc
  addi t1, t1, 4
  csrw mepc, t1
  /* ECALL from U returns to M-mode: that is how tests leave a lower privilege. ECALL from
     S returns to M too, except while ecall_sets_stip is set: then, with mip.STIP clear,
     it sets STIP instead (a tiny "SBI set_timer" for the irq test). */
  csrr t0, mcause
  addi t0, t0, -8
  li t1, 1
  bgtu t0, t1, 2f
  /* In ecall_marker_mode (random programs) only an ECALL followed by the marker word
     0x0000000b returns to M, after the marker; any other ECALL is just skipped. */
  la t0, ecall_marker_mode
  lw t0, 0(t0)
  beqz t0, 4f
  csrr t0, mepc
  lw t1, 0(t0)
  li t2, 0x0000000b
  bne t1, t2, 2f
  addi t0, t0, 4
  csrw mepc, t0
  j 3f
4:
  csrr t0, mcause
  li t1, 8
  beq t0, t1, 3f
  la t0, ecall_sets_stip
  lw t0, 0(t0)
  beqz t0, 3f
  csrr t0, mip
  andi t0, t0, 0x20
  bnez t0, 3f
  li t0, 0x20
  csrs mip, t0
  j 2f
3:
  li t0, 0x1800
  csrs mstatus, t0
2:
  lw ra, 0(sp)
  lw t0, 4(sp)
  lw t1, 8(sp)
  lw t2, 12(sp)
  lw t3, 16(sp)
  lw t4, 20(sp)
  lw t5, 24(sp)
  lw t6, 28(sp)
  lw a0, 32(sp)
  lw a1, 36(sp)
  csrr sp, mscratch
  mret
5:
  la t0, irq_handler
  lw t0, 0(t0)
  beqz t0, 6f
  jalr t0
  j 2b
6:
  PUTS "unexpected interrupt "
  csrr a0, mcause
  call puthex
  NL
  li a0, 99
  j exit

  .data
  .align 2
  .globl trap_redirect
trap_redirect: .word 0
  .globl irq_handler
irq_handler: .word 0
  .globl ecall_sets_stip
ecall_sets_stip: .word 0
  .globl ecall_marker_mode
ecall_marker_mode: .word 0

  .bss
  .align 4
  .space 2048
trap_stack_top:
  .space 4096
stack_top:
