/* The SBI calls S-mode makes with `ecall` (SBI spec v2.0 chapters 3-12): a7 = extension,
 * a6 = function, a0..a5 = arguments; the answer is a0 = error, a1 = value. Legacy v0.1
 * calls (chapter 5) put their single result in a0 and leave a1 alone. One hart: hart 0. */
#include "trap.h"
#include "platform.h"
#include "sbi.h"
#include "../lib/csr.h"

enum { A0 = 10, A1, A2, A3, A4, A5, A6, A7 };

struct sbiret {
	long error;
	long value;
};

static struct sbiret ok(long value) { return (struct sbiret){ SBI_SUCCESS, value }; }
static struct sbiret err(long e) { return (struct sbiret){ e, 0 }; }

/* (hart_mask, hart_mask_base) names hart 0? base -1 means "every hart" (SBI spec §3.2). */
static int mask_selects_hart0(uint32_t mask, uint32_t base, int *bad)
{
	*bad = 0;
	if (base == 0xffffffffu)
		return 1;
	if (base > 0 || (mask & ~1u)) {
		*bad = 1; /* names harts that do not exist */
		return 0;
	}
	return mask & 1u;
}

static void set_timer(uint64_t when)
{
	if (platform_sstc) {
		/* STIP is stimecmp's to drive: pending while time >= when (Sstc spec). */
		sstc_set_timer(when);
		return;
	}
	clint_set_mtimecmp(when);
	csr_clear(mip, 1u << IRQ_S_TIMER);
	csr_set(mie, 1u << IRQ_M_TIMER);
}

static void system_reset(uint32_t type, uint32_t reason)
{
	if (type == SBI_SRST_TYPE_SHUTDOWN) {
		printf("\nminivm-sbi: shutdown%s\n", reason == SBI_SRST_REASON_FAILURE ? " (failure)" : "");
		finisher_write(reason == SBI_SRST_REASON_FAILURE ? (1u << 16) | FINISHER_FAIL : FINISHER_PASS);
	}
	printf("\nminivm-sbi: reboot\n");
	finisher_write(FINISHER_RESET);
}

/* Debug console buffers are physical addresses in S-visible RAM (SBI spec §12.1). */
static int dbcn_range_ok(uint32_t n, uint32_t lo, uint32_t hi)
{
	if (hi != 0 || n == 0)
		return n == 0 && hi == 0;
	uint64_t end = (uint64_t)lo + n;
	if (lo < machine.ram_base || end > (uint64_t)machine.ram_base + machine.ram_size)
		return 0;
	return lo >= FW_BASE + FW_SIZE || end <= FW_BASE;
}

static struct sbiret base_call(uint32_t fid, uint32_t arg)
{
	switch (fid) {
	case 0: return ok((long)SBI_SPEC_VERSION);
	case 1: return ok(SBI_IMPL_ID);
	case 2: return ok(SBI_IMPL_VERSION);
	case 3:
		switch (arg) {
		case SBI_EXT_BASE: case SBI_EXT_TIME: case SBI_EXT_IPI: case SBI_EXT_RFENCE:
		case SBI_EXT_HSM: case SBI_EXT_SRST: case SBI_EXT_DBCN:
			return ok(1);
		default:
			return ok(arg <= SBI_EXT_0_1_SHUTDOWN ? 1 : 0);
		}
	case 4: return ok((long)csr_read(mvendorid));
	case 5: return ok((long)csr_read(marchid));
	case 6: return ok((long)csr_read(mimpid));
	default: return err(SBI_ERR_NOT_SUPPORTED);
	}
}

static struct sbiret dbcn_call(struct trap_frame *f, uint32_t fid)
{
	uint32_t n = f->x[A0], lo = f->x[A1], hi = f->x[A2];
	switch (fid) {
	case 0: /* sbi_debug_console_write */
		if (!dbcn_range_ok(n, lo, hi))
			return err(SBI_ERR_INVALID_PARAM);
		for (uint32_t i = 0; i < n; i++)
			uart_putc(((const char *)lo)[i]);
		return ok((long)n);
	case 1: { /* sbi_debug_console_read: whatever is waiting, never blocks */
		if (!dbcn_range_ok(n, lo, hi))
			return err(SBI_ERR_INVALID_PARAM);
		uint32_t got = 0;
		for (int c; got < n && (c = uart_getc()) >= 0; got++)
			((char *)lo)[got] = (char)c;
		return ok((long)got);
	}
	case 2:
		uart_putc((char)f->x[A0]);
		return ok(0);
	default:
		return err(SBI_ERR_NOT_SUPPORTED);
	}
}

static struct sbiret v02_call(struct trap_frame *f, uint32_t eid, uint32_t fid)
{
	int bad;
	switch (eid) {
	case SBI_EXT_BASE:
		return base_call(fid, f->x[A0]);
	case SBI_EXT_TIME:
		if (fid != 0)
			return err(SBI_ERR_NOT_SUPPORTED);
		set_timer(((uint64_t)f->x[A1] << 32) | f->x[A0]);
		return ok(0);
	case SBI_EXT_IPI:
		if (fid != 0)
			return err(SBI_ERR_NOT_SUPPORTED);
		if (mask_selects_hart0(f->x[A0], f->x[A1], &bad))
			clint_set_msip(1);
		return bad ? err(SBI_ERR_INVALID_PARAM) : ok(0);
	case SBI_EXT_RFENCE:
		if (fid > 2)
			return err(SBI_ERR_NOT_SUPPORTED); /* the hypervisor fences */
		if (mask_selects_hart0(f->x[A0], f->x[A1], &bad)) {
			if (fid == 0)
				__asm__ volatile("fence.i" ::: "memory");
			else
				__asm__ volatile("sfence.vma" ::: "memory");
		}
		return bad ? err(SBI_ERR_INVALID_PARAM) : ok(0);
	case SBI_EXT_HSM:
		switch (fid) {
		case 0: /* hart_start: hart 0 is running this very call */
			return err(f->x[A0] == 0 ? SBI_ERR_ALREADY_AVAILABLE : SBI_ERR_INVALID_PARAM);
		case 1: /* hart_stop: the only hart may not stop itself */
			return err(SBI_ERR_FAILED);
		case 2:
			return f->x[A0] == 0 ? ok(SBI_HSM_STATE_STARTED) : err(SBI_ERR_INVALID_PARAM);
		default:
			return err(SBI_ERR_NOT_SUPPORTED);
		}
	case SBI_EXT_SRST:
		if (fid != 0)
			return err(SBI_ERR_NOT_SUPPORTED);
		if (f->x[A0] > SBI_SRST_TYPE_WARM_REBOOT || f->x[A1] > SBI_SRST_REASON_FAILURE)
			return err(SBI_ERR_INVALID_PARAM);
		system_reset(f->x[A0], f->x[A1]);
		return err(SBI_ERR_FAILED);
	case SBI_EXT_DBCN:
		return dbcn_call(f, fid);
	default:
		return err(SBI_ERR_NOT_SUPPORTED);
	}
}

/* Legacy calls take no function ID; the result replaces a0 only. */
static long legacy_call(struct trap_frame *f, uint32_t eid)
{
	switch (eid) {
	case SBI_EXT_0_1_SET_TIMER:
		set_timer(((uint64_t)f->x[A1] << 32) | f->x[A0]);
		return 0;
	case SBI_EXT_0_1_CONSOLE_PUTCHAR:
		uart_putc((char)f->x[A0]);
		return 0;
	case SBI_EXT_0_1_CONSOLE_GETCHAR:
		return uart_getc();
	case SBI_EXT_0_1_CLEAR_IPI:
		csr_clear(mip, 1u << IRQ_S_SOFT);
		return 0;
	case SBI_EXT_0_1_SEND_IPI: /* a0 points at a hart mask; hart 0 is the only target */
		clint_set_msip(1);
		return 0;
	case SBI_EXT_0_1_REMOTE_FENCE_I:
		__asm__ volatile("fence.i" ::: "memory");
		return 0;
	case SBI_EXT_0_1_REMOTE_SFENCE_VMA:
	case SBI_EXT_0_1_REMOTE_SFENCE_VMA_ASID:
		__asm__ volatile("sfence.vma" ::: "memory");
		return 0;
	default: /* SBI_EXT_0_1_SHUTDOWN */
		system_reset(SBI_SRST_TYPE_SHUTDOWN, SBI_SRST_REASON_NONE);
		return 0;
	}
}

void sbi_ecall(struct trap_frame *f)
{
	uint32_t eid = f->x[A7], fid = f->x[A6];
	if (eid <= SBI_EXT_0_1_SHUTDOWN) {
		f->x[A0] = (uint32_t)legacy_call(f, eid);
		return;
	}
	struct sbiret r = v02_call(f, eid, fid);
	f->x[A0] = (uint32_t)r.error;
	f->x[A1] = (uint32_t)r.value;
}
