/* What M-mode does with traps from S/U once the payload runs: SBI calls, the timer and
 * software interrupts it forwards to S (as OpenSBI does, Privileged spec §3.1.9), rdtime
 * emulation where the hart lacks the time CSR, and redirecting other exceptions to S. */
#include "trap.h"
#include "platform.h"
#include "../lib/csr.h"

volatile int m_probe;

static void panic(struct trap_frame *f, const char *why) __attribute__((noreturn));
static void panic(struct trap_frame *f, const char *why)
{
	(void)f;
	printf("minivm-sbi: %s: mcause=0x%x mepc=0x%x mtval=0x%x mstatus=0x%x\n", why,
	       csr_read(mcause), csr_read(mepc), csr_read(mtval), csr_read(mstatus));
	finisher_write((1u << 16) | FINISHER_FAIL);
}

/* Deliver the current exception to S-mode as if medeleg had delegated it (§3.1.6.1 rules
 * for SPP/SPIE/SIE), then resume at stvec. */
static void redirect_to_s(struct trap_frame *f, uint32_t cause, uint32_t tval)
{
	uint32_t mstatus = csr_read(mstatus);
	uint32_t from = (mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
	uint32_t stvec = csr_read(stvec);
	if (from == 3 || stvec == 0)
		panic(f, "exception S-mode cannot take");
	csr_write(scause, cause);
	csr_write(sepc, csr_read(mepc));
	csr_write(stval, tval);
	mstatus &= ~(MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_MPP);
	if (from == 1)
		mstatus |= MSTATUS_SPP;
	if (csr_read(sstatus) & MSTATUS_SIE)
		mstatus |= MSTATUS_SPIE;
	mstatus |= 1u << MSTATUS_MPP_SHIFT;
	csr_write(mstatus, mstatus);
	csr_write(mepc, stvec & ~3u);
}

/* `csrrs rd, time|timeh, x0` (what rdtime/rdtimeh assemble to) on a hart whose time CSR
 * traps: answer from the CLINT's mtime, which is what the CSR would show. */
static int emulate_rdtime(struct trap_frame *f, uint32_t insn)
{
	uint32_t opcode = insn & 0x7f, funct3 = (insn >> 12) & 7, rs1 = (insn >> 15) & 31;
	uint32_t csr = insn >> 20, rd = (insn >> 7) & 31;
	if (opcode != 0x73 || funct3 != 2 || rs1 != 0 || (csr != 0xc01 && csr != 0xc81))
		return 0;
	/* From U, S decides through scounteren.TM; if S said no, the trap is S's to see. */
	uint32_t from = (csr_read(mstatus) & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
	if (from == 0 && !(csr_read(scounteren) & 2u))
		return 0;
	uint64_t now = clint_mtime();
	if (rd)
		f->x[rd] = csr == 0xc01 ? (uint32_t)now : (uint32_t)(now >> 32);
	csr_write(mepc, csr_read(mepc) + 4);
	return 1;
}

void sbi_trap(struct trap_frame *f)
{
	uint32_t cause = csr_read(mcause);
	if (cause & 0x80000000u) {
		switch (cause & 0x7fffffffu) {
		case IRQ_M_TIMER:
			/* The S timer the payload asked for is due: show it as STIP and stop MTIP
			 * from firing again until the next sbi_set_timer. */
			csr_clear(mie, 1u << IRQ_M_TIMER);
			csr_set(mip, 1u << IRQ_S_TIMER);
			return;
		case IRQ_M_SOFT:
			clint_set_msip(0);
			csr_set(mip, 1u << IRQ_S_SOFT);
			return;
		default:
			panic(f, "unexpected interrupt");
		}
	}
	switch (cause) {
	case CAUSE_SUPERVISOR_ECALL:
		sbi_ecall(f);
		csr_write(mepc, csr_read(mepc) + 4);
		return;
	case CAUSE_ILLEGAL_INSTRUCTION:
		if (emulate_rdtime(f, csr_read(mtval)))
			return;
		redirect_to_s(f, cause, csr_read(mtval));
		return;
	case CAUSE_MACHINE_ECALL:
		panic(f, "ecall from M-mode");
	default:
		redirect_to_s(f, cause, csr_read(mtval));
	}
}

void sbi_trap_in_m(struct trap_frame *f)
{
	if (m_probe == M_PROBE_ARMED && csr_read(mcause) == CAUSE_ILLEGAL_INSTRUCTION) {
		m_probe = M_PROBE_FAULTED;
		csr_write(mepc, csr_read(mepc) + 4);
		return;
	}
	panic(f, "trap in firmware");
}
