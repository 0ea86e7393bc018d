/* The teaching guest's boot: read the DTB while it is still reachable by its physical
 * address, turn paging on, start the 100 Hz tick, find the disk, then run the shell. */
#include "guest.h"
#include "../lib/fdt.h"
#include "../lib/string.h"
#include "../lib/csr.h"

struct guest_machine gm;

static void read_dtb(uintptr_t dtb)
{
	const void *fdt = (const void *)dtb;
	uint32_t len, acells = 2, scells = 1;
	memcpy(gm.model, "unknown machine", 16);
	gm.ram_base = 0x80000000u;
	gm.ram_size = 128u << 20;
	gm.timebase = 10000000;
	if (fdt_check(fdt))
		return;
	gm.dtb = dtb;
	gm.dtb_size = fdt_totalsize(fdt);
	const char *model = fdt_prop(fdt, "/", "model", &len);
	if (model && len <= sizeof(gm.model))
		memcpy(gm.model, model, len);
	const void *p = fdt_prop(fdt, "/", "#address-cells", &len);
	if (p)
		acells = be32(p);
	p = fdt_prop(fdt, "/", "#size-cells", &len);
	if (p)
		scells = be32(p);
	p = fdt_prop(fdt, "/memory", "reg", &len);
	if (p && len >= 4 * (acells + scells)) {
		gm.ram_base = (uint32_t)fdt_cells(p, acells);
		gm.ram_size = (uint32_t)fdt_cells((const uint8_t *)p + 4 * acells, scells);
	}
	/* 2 GiB at 0x8000_0000 ends at 2^32, which 32-bit address arithmetic cannot hold:
	 * give up the last 4 MiB so "base + size" always makes sense. */
	if ((uint64_t)gm.ram_base + gm.ram_size > 0xffc00000u)
		gm.ram_size = 0xffc00000u - gm.ram_base;
	p = fdt_prop(fdt, "/cpus", "timebase-frequency", &len);
	if (p && be32(p))
		gm.timebase = be32(p);
}

void guest_main(uint32_t hartid, uintptr_t dtb);
void guest_main(uint32_t hartid, uintptr_t dtb)
{
	gm.hartid = hartid;
	read_dtb(dtb);
	console_init();
	struct sbiret v = sbi_call(SBI_EXT_BASE, 0, 0, 0, 0);
	struct sbiret impl = sbi_call(SBI_EXT_BASE, 1, 0, 0, 0);
	printf("minivm guest 1.0 on %s: hart %u, %u MiB RAM, timebase %u Hz\n", gm.model, hartid,
	       gm.ram_size >> 20, gm.timebase);
	printf("sbi: v%u.%u, implementation 0x%x\n", (uint32_t)v.value >> 24, (uint32_t)v.value & 0xffffff,
	       (uint32_t)impl.value);
	uint32_t satp = paging_init();
	printf("paging: Sv32 on, satp=0x%08x (text r-x, rodata r--, data rw-, firmware unmapped)\n", satp);
	timer_start();
	printf("timer: %u Hz through SBI TIME\n", TICK_HZ);
	disk_init();
	printf("Type 'help' for commands.\n");
	shell_run();
}
