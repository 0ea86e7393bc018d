/* What the guest's parts share: SBI calls, the console, time, and the machine facts read
 * from the DTB before paging starts. */
#ifndef MINIVM_GUEST_H
#define MINIVM_GUEST_H
#include "../lib/types.h"
#include "../lib/virtio-blk.h"

struct sbiret {
	long error;
	long value;
};

static inline struct sbiret sbi_call(uint32_t eid, uint32_t fid, uint32_t arg0, uint32_t arg1, uint32_t arg2)
{
	register uint32_t a0 __asm__("a0") = arg0;
	register uint32_t a1 __asm__("a1") = arg1;
	register uint32_t a2 __asm__("a2") = arg2;
	register uint32_t a6 __asm__("a6") = fid;
	register uint32_t a7 __asm__("a7") = eid;
	__asm__ volatile("ecall" : "+r"(a0), "+r"(a1) : "r"(a2), "r"(a6), "r"(a7) : "memory");
	return (struct sbiret){ (long)a0, (long)a1 };
}

#define SBI_EXT_BASE 0x10
#define SBI_EXT_TIME 0x54494d45
#define SBI_EXT_SRST 0x53525354
#define SBI_EXT_DBCN 0x4442434e
#define SBI_LEGACY_PUTCHAR 0x1
#define SBI_LEGACY_GETCHAR 0x2

struct guest_machine {
	char model[64];
	uint32_t hartid;
	uint32_t ram_base, ram_size, ram_mib;
	uint32_t timebase;
	uintptr_t dtb;
	uint32_t dtb_size;
};
extern struct guest_machine gm;

/* console.c */
void console_init(void);
void console_write(const char *s, size_t n);
void printf(const char *fmt, ...);
int console_getc(void); /* -1 when nothing is waiting */
int console_key_pressed(void); /* consumes one key if there is one */
size_t console_readline(char *buf, size_t size);

/* trap.c */
#define TICK_HZ 100
void timer_start(void);
uint64_t time_now(void);
uint32_t time_ms(uint64_t ticks);
uint64_t uptime_ticks(void);
void idle(void);
extern volatile uint32_t soft_interrupts;
extern volatile uint32_t spurious_irqs; /* external interrupts with nothing to claim */
extern volatile int plic_stuck; /* 1: SEIP stuck, masked, not yet reported; 2: reported */
/* Set to 1 before an instruction meant to fault; the handler records and skips it. */
extern volatile int trap_probe;
extern volatile uint32_t trap_probe_cause, trap_probe_tval;

/* plic.c */
void plic_enable(uint32_t irq);
uint32_t plic_claim(void);
void plic_complete(uint32_t irq);

/* paging.c */
uint32_t paging_init(void);

/* shell.c */
void shell_run(void) __attribute__((noreturn));
void system_reset(uint32_t type, uint32_t reason);

/* dirty.c */
#define DIRTY_BASE 0x81000000u
/* shell.c: a number argument in MIN..MAX (decimal or 0x hex), or a message and -1; no wrap-around. */
int arg_u32(const char *cmd, const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* The disk loops return this when a key stopped them. */
#define DISK_STOPPED (-1000)
void cmd_dirty(int argc, char **argv);
void cmd_check(int argc, char **argv);

/* disk.c */
extern struct vblk disk;
extern int disk_ready;
extern uint32_t data_lba, data_sectors;
extern volatile uint32_t disk_irqs;
void disk_interrupt(uint32_t irq);
void disk_init(void);
void cmd_disk(int argc, char **argv);
int disk_fill(uint32_t bytes, uint32_t pattern, uint64_t *elapsed);
int disk_drain(uint32_t bytes, uint64_t *elapsed);

/* sbi.c */
void cmd_sbi(int argc, char **argv);

/* bench.c */
void cmd_bench(int argc, char **argv);

#endif
