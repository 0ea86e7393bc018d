/* Fixed-width types and MMIO accessors shared by the SBI firmware and the teaching guest.
 * Freestanding: only the compiler's own <stdint.h>/<stddef.h>, no libc. */
#ifndef MINIVM_TYPES_H
#define MINIVM_TYPES_H
#include <stdint.h>
#include <stddef.h>

/* Device registers must be touched exactly once per C access: volatile, never cached. */
static inline uint32_t mmio_read32(uintptr_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write32(uintptr_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }
static inline uint8_t mmio_read8(uintptr_t addr) { return *(volatile uint8_t *)addr; }
static inline void mmio_write8(uintptr_t addr, uint8_t v) { *(volatile uint8_t *)addr = v; }

/* Orders our ring writes before the device sees the notify (and its writes before our reads). */
static inline void fence_rw(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }

static inline uint32_t be32(const void *p)
{
	const uint8_t *b = p;
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static inline uint32_t le32(const void *p)
{
	const uint8_t *b = p;
	return b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
