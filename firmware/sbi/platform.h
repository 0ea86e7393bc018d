/* Where QEMU's riscv32 `virt` board puts the devices the firmware drives itself
 * (hw/riscv/virt.c memory map); everything else is found by scanning or from the DTB. */
#ifndef MINIVM_SBI_PLATFORM_H
#define MINIVM_SBI_PLATFORM_H
#include "../lib/types.h"

#define UART0_BASE 0x10000000u
#define CLINT_BASE 0x02000000u
#define CLINT_MSIP(h) (CLINT_BASE + 4u * (h))
#define CLINT_MTIMECMP(h) (CLINT_BASE + 0x4000u + 8u * (h))
#define CLINT_MTIME (CLINT_BASE + 0xbff8u)
#define FINISHER_BASE 0x00100000u
#define FINISHER_PASS 0x5555u
#define FINISHER_RESET 0x7777u
#define FINISHER_FAIL 0x3333u

/* The firmware keeps [FW_BASE, FW_BASE + FW_SIZE) for itself and fences it off with PMP. */
#define FW_BASE 0x80000000u
#define FW_SIZE 0x80000u

struct machine_info {
	const char *model;
	uint32_t ram_base;
	uint32_t ram_size;
	uint32_t ram_mib;
	uintptr_t dtb;
	uint32_t dtb_size;
};
extern struct machine_info machine;

void uart_init(void);
void uart_putc(char c);
int uart_getc(void);

void console_putc(char c); /* turns \n into \r\n */
void printf(const char *fmt, ...);

uint64_t clint_mtime(void);
void clint_set_mtimecmp(uint64_t when);
void clint_set_msip(int on);

void finisher_write(uint32_t value) __attribute__((noreturn));

/* Sstc: the hart's own S timer compare (stimecmp/stimecmph), used instead of the CLINT's
 * mtimecmp when present. */
extern int platform_sstc;
void sstc_set_timer(uint64_t when);

/* Loads the boot payload from the first virtio-blk disk; returns its entry or 0. */
uintptr_t load_payload(void);

#endif
