/* minivm-sbi entry and M-mode trap vector.
 * Boot ROM contract (QEMU hw/riscv/boot.c): a0 = mhartid, a1 = DTB address,
 * a2 = fw_dynamic_info, M-mode, MMU off.
 * Trap contract: mscratch holds the top of the M stack while S/U code runs and 0 while the
 * firmware itself runs, so one vector tells "trap from below" from "trap inside M". */
	.file "start.S"
	.section .text.start, "ax"
	.globl _start
_start:
	csrw	mie, zero
	csrw	mscratch, zero
	la	t0, sbi_trap_entry
	csrw	mtvec, t0
	bnez	a0, park		/* one hart: others sleep for good */
	la	sp, __stack_top
	la	t0, __bss_start
	la	t1, __bss_end
1:	bgeu	t0, t1, 2f
	sw	zero, 0(t0)
	addi	t0, t0, 4
	j	1b
2:	call	sbi_main		/* sbi_main(hartid, dtb, fw_dynamic_info) never returns */
park:	wfi
	j	park

/* A trap frame is the 32 integer registers, x0's slot unused, x2 = the interrupted sp. */
#define FRAME 128
.macro SAVE_REGS
	sw	x1, 4(sp)
	sw	x3, 12(sp)
	sw	x4, 16(sp)
	sw	x5, 20(sp)
	sw	x6, 24(sp)
	sw	x7, 28(sp)
	sw	x8, 32(sp)
	sw	x9, 36(sp)
	sw	x10, 40(sp)
	sw	x11, 44(sp)
	sw	x12, 48(sp)
	sw	x13, 52(sp)
	sw	x14, 56(sp)
	sw	x15, 60(sp)
	sw	x16, 64(sp)
	sw	x17, 68(sp)
	sw	x18, 72(sp)
	sw	x19, 76(sp)
	sw	x20, 80(sp)
	sw	x21, 84(sp)
	sw	x22, 88(sp)
	sw	x23, 92(sp)
	sw	x24, 96(sp)
	sw	x25, 100(sp)
	sw	x26, 104(sp)
	sw	x27, 108(sp)
	sw	x28, 112(sp)
	sw	x29, 116(sp)
	sw	x30, 120(sp)
	sw	x31, 124(sp)
.endm
.macro RESTORE_REGS_BUT_SP
	lw	x1, 4(sp)
	lw	x3, 12(sp)
	lw	x4, 16(sp)
	lw	x5, 20(sp)
	lw	x6, 24(sp)
	lw	x7, 28(sp)
	lw	x8, 32(sp)
	lw	x9, 36(sp)
	lw	x10, 40(sp)
	lw	x11, 44(sp)
	lw	x12, 48(sp)
	lw	x13, 52(sp)
	lw	x14, 56(sp)
	lw	x15, 60(sp)
	lw	x16, 64(sp)
	lw	x17, 68(sp)
	lw	x18, 72(sp)
	lw	x19, 76(sp)
	lw	x20, 80(sp)
	lw	x21, 84(sp)
	lw	x22, 88(sp)
	lw	x23, 92(sp)
	lw	x24, 96(sp)
	lw	x25, 100(sp)
	lw	x26, 104(sp)
	lw	x27, 108(sp)
	lw	x28, 112(sp)
	lw	x29, 116(sp)
	lw	x30, 120(sp)
	lw	x31, 124(sp)
.endm

	.text
	.balign 4
	.globl sbi_trap_entry
sbi_trap_entry:
	csrrw	sp, mscratch, sp
	beqz	sp, trap_from_m
	addi	sp, sp, -FRAME
	SAVE_REGS
	csrr	t0, mscratch
	sw	t0, 8(sp)
	csrw	mscratch, zero		/* a trap while we handle this one is the firmware's own */
	mv	a0, sp
	call	sbi_trap
	addi	t0, sp, FRAME
	csrw	mscratch, t0
	RESTORE_REGS_BUT_SP
	lw	sp, 8(sp)
	mret

trap_from_m:
	csrrw	sp, mscratch, sp	/* back to the firmware's sp; mscratch = 0 again */
	addi	sp, sp, -FRAME
	SAVE_REGS
	addi	t0, sp, FRAME
	sw	t0, 8(sp)
	mv	a0, sp
	call	sbi_trap_in_m		/* returns only for a probed instruction */
	RESTORE_REGS_BUT_SP
	addi	sp, sp, FRAME
	mret
