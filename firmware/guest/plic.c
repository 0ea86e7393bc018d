/* The PLIC as a supervisor uses it (SiFive PLIC spec; QEMU hw/intc/sifive_plic.c): hart 0's
 * S-mode is context 1. A source interrupts when its priority is above the context's
 * threshold and the context enables it; the handler claims it, serves it, completes it. */
#include "guest.h"

#define PLIC_BASE 0x0c000000u
#define PLIC_PRIORITY(irq) (PLIC_BASE + 4u * (irq))
#define PLIC_ENABLE(ctx, irq) (PLIC_BASE + 0x2000u + 0x80u * (ctx) + 4u * ((irq) / 32))
#define PLIC_THRESHOLD(ctx) (PLIC_BASE + 0x200000u + 0x1000u * (ctx))
#define PLIC_CLAIM(ctx) (PLIC_THRESHOLD(ctx) + 4u)
#define S_CONTEXT(hart) (2u * (hart) + 1u)

void plic_enable(uint32_t irq)
{
	uint32_t ctx = S_CONTEXT(gm.hartid);
	mmio_write32(PLIC_PRIORITY(irq), 1);
	mmio_write32(PLIC_ENABLE(ctx, irq), mmio_read32(PLIC_ENABLE(ctx, irq)) | (1u << (irq % 32)));
	mmio_write32(PLIC_THRESHOLD(ctx), 0);
}

uint32_t plic_claim(void)
{
	return mmio_read32(PLIC_CLAIM(S_CONTEXT(gm.hartid)));
}

void plic_complete(uint32_t irq)
{
	mmio_write32(PLIC_CLAIM(S_CONTEXT(gm.hartid)), irq);
}
