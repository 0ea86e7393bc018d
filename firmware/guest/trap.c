/* Time and the S-mode trap handler. The firmware turns our SBI TIME deadline into a
 * supervisor timer interrupt (STIP); each one advances the tick count and asks for the
 * next deadline one period later, so the ticks keep in step with `time`. */
#include "guest.h"
#include "../lib/csr.h"

static volatile uint64_t ticks;
volatile uint32_t soft_interrupts;
volatile uint32_t spurious_irqs;
volatile int plic_stuck;
volatile int trap_probe;
volatile uint32_t trap_probe_cause, trap_probe_tval;
static uint64_t next_deadline, period;

uint64_t time_now(void)
{
	uint32_t hi, lo;
	do {
		hi = csr_read(timeh);
		lo = csr_read(time);
	} while (hi != csr_read(timeh));
	return ((uint64_t)hi << 32) | lo;
}

uint32_t time_ms(uint64_t t)
{
	return (uint32_t)(t * 1000 / gm.timebase);
}

uint64_t uptime_ticks(void)
{
	return ticks;
}

static void set_timer(uint64_t when)
{
	sbi_call(SBI_EXT_TIME, 0, (uint32_t)when, (uint32_t)(when >> 32), 0);
}

extern void guest_trap_entry(void);

void timer_start(void)
{
	period = gm.timebase / TICK_HZ;
	csr_write(stvec, (uintptr_t)guest_trap_entry);
	next_deadline = time_now() + period;
	set_timer(next_deadline);
	csr_set(sie, 1u << IRQ_S_TIMER);
	csr_set(sstatus, MSTATUS_SIE);
}

/* wfi resumes on any pending enabled interrupt; with SIE set the tick handler runs first. */
void idle(void)
{
	__asm__ volatile("wfi");
}

void guest_trap(void);
void guest_trap(void)
{
	uint32_t scause = csr_read(scause);
	if (scause == (0x80000000u | IRQ_S_TIMER)) {
		ticks++;
		next_deadline += period;
		uint64_t now = time_now();
		if (next_deadline <= now) /* we were held up (e.g. a paused VM): do not replay */
			next_deadline = now + period;
		set_timer(next_deadline);
		return;
	}
	if (scause == (0x80000000u | IRQ_S_EXT)) {
		static uint32_t in_a_row;
		uint32_t irq = plic_claim();
		if (irq) {
			in_a_row = 0;
			disk_interrupt(irq);
			plic_complete(irq);
			return;
		}
		/* Claim 0: nothing was pending after all. A few happen; an endless run means SEIP
		 * is stuck high, so mask it and let the disk poll rather than hang. */
		spurious_irqs++;
		if (++in_a_row == 1000) {
			csr_clear(sie, 1u << IRQ_S_EXT);
			plic_stuck = 1;
		}
		return;
	}
	if (scause == (0x80000000u | IRQ_S_SOFT)) {
		/* An IPI: the firmware set SSIP for us, and only S can clear it. */
		csr_clear(sip, 1u << IRQ_S_SOFT);
		soft_interrupts++;
		return;
	}
	if (trap_probe && !(scause & 0x80000000u)) {
		/* An exception a command provoked on purpose: note it and step over. */
		trap_probe = 0;
		trap_probe_cause = scause;
		trap_probe_tval = csr_read(stval);
		csr_write(sepc, csr_read(sepc) + 4);
		return;
	}
	printf("\nguest: unexpected trap scause=0x%x sepc=0x%x stval=0x%x\n", scause, csr_read(sepc),
	       csr_read(stval));
	system_reset(0, 1);
}
