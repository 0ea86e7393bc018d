/* The three devices the firmware uses directly: the NS16550A console (register layout of
 * the 16550 data sheet), the CLINT timer/software interrupt (SiFive CLINT), and the
 * sifive_test finisher that powers QEMU's virt board off or resets it. */
#include "platform.h"
#include "../lib/format.h"

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, LCR = 3, LSR = 5 };
#define LSR_DR 0x01u
#define LSR_THRE 0x20u

void uart_init(void)
{
	mmio_write8(UART0_BASE + IER, 0);
	/* 115200 baud from QEMU's 3.6864 MHz clock: divisor 2. QEMU ignores it; hardware would not. */
	mmio_write8(UART0_BASE + LCR, 0x80);
	mmio_write8(UART0_BASE + DLL, 2);
	mmio_write8(UART0_BASE + DLM, 0);
	mmio_write8(UART0_BASE + LCR, 0x03); /* 8N1 */
	/* FCR is left alone: switching the FIFOs on clears them, losing keys typed ahead. */
}

void uart_putc(char c)
{
	while (!(mmio_read8(UART0_BASE + LSR) & LSR_THRE))
		;
	mmio_write8(UART0_BASE + THR, (uint8_t)c);
}

int uart_getc(void)
{
	if (mmio_read8(UART0_BASE + LSR) & LSR_DR)
		return mmio_read8(UART0_BASE + RBR);
	return -1;
}

void console_putc(char c)
{
	if (c == '\n')
		uart_putc('\r');
	uart_putc(c);
}

void printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(console_putc, fmt, ap);
	va_end(ap);
}

uint64_t clint_mtime(void)
{
	uint32_t hi, lo;
	do {
		hi = mmio_read32(CLINT_MTIME + 4);
		lo = mmio_read32(CLINT_MTIME);
	} while (hi != mmio_read32(CLINT_MTIME + 4));
	return ((uint64_t)hi << 32) | lo;
}

void clint_set_mtimecmp(uint64_t when)
{
	/* Raise the high half first so no intermediate value is in the past. */
	mmio_write32(CLINT_MTIMECMP(0) + 4, 0xffffffffu);
	mmio_write32(CLINT_MTIMECMP(0), (uint32_t)when);
	mmio_write32(CLINT_MTIMECMP(0) + 4, (uint32_t)(when >> 32));
}

void clint_set_msip(int on)
{
	mmio_write32(CLINT_MSIP(0), on ? 1u : 0u);
}

void finisher_write(uint32_t value)
{
	mmio_write32(FINISHER_BASE, value);
	/* A board without a finisher: stay here rather than run into whatever follows. */
	for (;;)
		__asm__ volatile("wfi");
}

uint64_t platform_time(void)
{
	return clint_mtime();
}

/* Written high half first, through all ones, so the compare never passes early in between. */
void sstc_set_timer(uint64_t when)
{
	__asm__ volatile("csrw 0x15d, %0" ::"r"(0xffffffffu)); /* stimecmph */
	__asm__ volatile("csrw 0x14d, %0" ::"r"((uint32_t)when)); /* stimecmp */
	__asm__ volatile("csrw 0x15d, %0" ::"r"((uint32_t)(when >> 32)));
}
