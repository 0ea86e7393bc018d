/* The teaching guest's boot: read the DTB while it is still reachable by its physical
 * address, turn paging on, start the 100 Hz tick, find the disk, then run the shell. */
#include "guest.h"
#include "../lib/fdt.h"
#include "../lib/string.h"
#include "../lib/csr.h"

struct guest_machine gm;

/* Copies what the guest needs: once paging is on, the tree may not be mapped. */
static void read_dtb(uintptr_t dtb)
{
	struct fdt_machine m;
	int ok = fdt_read_machine((const void *)dtb, &m) == 0;
	size_t n = strlen(m.model);
	if (n >= sizeof(gm.model))
		n = sizeof(gm.model) - 1;
	memcpy(gm.model, m.model, n);
	gm.model[n] = '\0';
	gm.ram_base = m.ram_base;
	gm.ram_size = m.ram_size;
	gm.ram_mib = m.ram_mib;
	gm.timebase = m.timebase;
	gm.dtb = ok ? dtb : 0;
	gm.dtb_size = m.size;
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
	       gm.ram_mib, gm.timebase);
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
