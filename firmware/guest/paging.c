/* Sv32 (Privileged spec §10.3): a two-level table, identity-mapped so that addresses given
 * to virtio and to SBI stay physical. The guest's own 4 MiB uses 4 KiB pages with text
 * r-x, read-only data r-- and the rest rw-; other RAM, the PLIC and the MMIO window use
 * 4 MiB megapages; the firmware's 4 MiB is not mapped at all. A and D are set up front so a hart
 * that faults instead of setting them (Svade) never has to. */
#include "guest.h"
#include "../lib/csr.h"

#define PTE_V (1u << 0)
#define PTE_R (1u << 1)
#define PTE_W (1u << 2)
#define PTE_X (1u << 3)
#define PTE_G (1u << 5)
#define PTE_A (1u << 6)
#define PTE_D (1u << 7)
#define PAGE 4096u
#define MEGAPAGE (4u << 20)
#define SATP_SV32 (1u << 31)

#define MMIO_WINDOW 0x10000000u /* UART0 and the virtio-mmio slots */
#define PLIC_WINDOW 0x0c000000u /* priorities, enables, and hart 0's thresholds and claims */

extern char __image_start[], __text_end[], __rodata_end[];

static uint32_t root[1024] __attribute__((aligned(PAGE)));
static uint32_t image[1024] __attribute__((aligned(PAGE)));

static uint32_t pte(uint32_t pa, uint32_t perms)
{
	return ((pa >> 12) << 10) | perms | PTE_V | PTE_A | PTE_D | PTE_G;
}

uint32_t paging_init(void)
{
	uint32_t base = (uintptr_t)__image_start;
	for (uint32_t i = 0; i < 1024; i++) {
		uint32_t va = base + i * PAGE;
		uint32_t perms = va < (uintptr_t)__text_end ? PTE_R | PTE_X
			       : va < (uintptr_t)__rodata_end ? PTE_R
			       : PTE_R | PTE_W;
		image[i] = pte(va, perms);
	}
	root[base >> 22] = ((uint32_t)(uintptr_t)image >> 12) << 10 | PTE_V;
	root[MMIO_WINDOW >> 22] = pte(MMIO_WINDOW, PTE_R | PTE_W);
	root[PLIC_WINDOW >> 22] = pte(PLIC_WINDOW, PTE_R | PTE_W);
	uint32_t ram_end = gm.ram_base + (gm.ram_size & ~(MEGAPAGE - 1));
	for (uint32_t va = base + MEGAPAGE; va < ram_end && va >= base; va += MEGAPAGE)
		root[va >> 22] = pte(va, PTE_R | PTE_W);

	uint32_t satp = SATP_SV32 | ((uint32_t)(uintptr_t)root >> 12);
	__asm__ volatile("sfence.vma" ::: "memory");
	csr_write(satp, satp);
	__asm__ volatile("sfence.vma" ::: "memory");
	return satp;
}
