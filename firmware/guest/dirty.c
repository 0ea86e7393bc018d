/* The dirty-page workload of QEMU's migration test (its "A-B" guest): byte 0 of every 4 KiB
 * page in the region is a u8 counter, and sweeps increment the counters in ascending page
 * order, forever. Stopped at any instant, walking the pages upward sees every counter equal
 * to the first one except for at most one step down by 1 (mod 256), where the sweep was,
 * so a stopped or migrated RAM image can be checked from outside as well as by `check`.
 * Bytes 4..7 of each page hold the page's own address, which also catches pages that
 * arrived in the wrong place. The region is physical (= virtual) 0x81000000 onwards. */
#include "guest.h"
#include "../lib/string.h"

#define PAGE 4096u
#define MIB (1u << 20)

/* Kept in RAM so `check` still knows the region after a migration. */
static uint32_t dirty_pages;

static uint32_t region_limit_mib(void)
{
	uint32_t end = gm.ram_base + gm.ram_size;
	if (gm.dtb >= DIRTY_BASE && gm.dtb < end)
		end = (uint32_t)gm.dtb & ~(MIB - 1); /* never run over the device tree */
	return end > DIRTY_BASE ? (end - DIRTY_BASE) / MIB : 0;
}

/* Bounds that keep the rate arithmetic below (elapsed ticks * rate * pages per MiB) in 64 bits. */
#define MAX_RATE_MIB_S 1000000u
#define MAX_SECONDS 1000000u

void cmd_dirty(int argc, char **argv)
{
	uint32_t mib, rate = 0, seconds = 0;
	if (argc < 2 || argc > 4) {
		printf("dirty: usage: dirty MIB [RATE_MIB_S] [SECONDS]\n");
		return;
	}
	uint32_t limit = region_limit_mib();
	if (limit == 0) {
		printf("dirty: no RAM from 0x%08x up to the device tree\n", DIRTY_BASE);
		return;
	}
	if (arg_u32("dirty", "MIB", argv[1], 1, limit, &mib) ||
	    (argc > 2 && arg_u32("dirty", "RATE_MIB_S", argv[2], 0, MAX_RATE_MIB_S, &rate)) ||
	    (argc > 3 && arg_u32("dirty", "SECONDS", argv[3], 0, MAX_SECONDS, &seconds)))
		return;
	uint32_t pages = mib * (MIB / PAGE);
	dirty_pages = 0;
	for (uint32_t p = 0; p < pages; p++) {
		uint8_t *page = (uint8_t *)(DIRTY_BASE + p * PAGE);
		page[0] = 0;
		*(uint32_t *)(page + 4) = DIRTY_BASE + p * PAGE;
	}
	dirty_pages = pages;
	printf("dirty: %u MiB (%u pages) at 0x%08x, ", mib, pages, DIRTY_BASE);
	if (rate)
		printf("%u MiB/s, ", rate);
	else
		printf("no rate limit, ");
	if (seconds)
		printf("for %u s or until a key is pressed\n", seconds);
	else
		printf("until a key is pressed\n");

	uint64_t start = time_now(), now = start;
	uint64_t end = start + (uint64_t)seconds * gm.timebase;
	uint64_t writes = 0;
	uint32_t p = 0, sweeps = 0;
	for (;;) {
		volatile uint8_t *counter = (volatile uint8_t *)(DIRTY_BASE + p * PAGE);
		*counter = (uint8_t)(*counter + 1);
		writes++;
		if (++p == pages) {
			p = 0;
			sweeps++;
		}
		if (writes % 64)
			continue;
		/* Every 256 KiB: look at the keyboard and the clock, and hold back to the rate. */
		if (console_key_pressed())
			break;
		now = time_now();
		if (seconds && now >= end)
			break;
		if (rate) {
			uint64_t allowed = (now - start) * rate * (MIB / PAGE) / gm.timebase;
			while (writes > allowed) {
				idle();
				if (console_key_pressed())
					goto stop;
				now = time_now();
				if (seconds && now >= end)
					goto stop;
				allowed = (now - start) * rate * (MIB / PAGE) / gm.timebase;
			}
		}
	}
stop:
	now = time_now();
	uint32_t ms = time_ms(now - start);
	uint32_t mib_s = ms ? (uint32_t)((writes * PAGE * 1000 / ms + MIB / 2) / MIB) : 0;
	printf("dirty: stopped sweeps=%u pages=%u ms=%u mib_s=%u\n", sweeps, (uint32_t)writes, ms, mib_s);
}

void cmd_check(int argc, char **argv)
{
	(void)argc, (void)argv; /* the shell refused any argument */
	if (!dirty_pages) {
		printf("check: no dirty region yet (run dirty first)\n");
		return;
	}
	const uint8_t *first = (const uint8_t *)DIRTY_BASE;
	uint8_t last = first[0];
	int stepped = 0;
	uint32_t step = 0;
	for (uint32_t p = 0; p < dirty_pages; p++) {
		const uint8_t *page = (const uint8_t *)(DIRTY_BASE + p * PAGE);
		uint32_t addr = DIRTY_BASE + p * PAGE, tag = *(const uint32_t *)(page + 4);
		if (tag != addr) {
			printf("check: bad page %u at 0x%08x: holds the tag of 0x%08x\n", p, addr, tag);
			return;
		}
		if (page[0] == last)
			continue;
		if (!stepped && page[0] == (uint8_t)(last - 1)) {
			stepped = 1;
			step = p;
			last = page[0];
			continue;
		}
		printf("check: bad page %u at 0x%08x: counter %u after %u\n", p, addr, page[0], last);
		return;
	}
	/* step = the first page the interrupted sweep had not reached yet (none: between sweeps) */
	if (stepped)
		printf("check: OK pages=%u first=%u last=%u step=%u\n", dirty_pages, first[0], last, step);
	else
		printf("check: OK pages=%u first=%u last=%u step=none\n", dirty_pages, first[0], last);
}
