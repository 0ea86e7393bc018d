/* 64-bit unsigned division for RV32, which has no such instruction. Debian's toolchain ships
 * no rv32ima libgcc multilib, so the helpers gcc calls for `u64 / u64` live here. */
#include "types.h"

static uint64_t divmod64(uint64_t n, uint64_t d, uint64_t *rem)
{
	uint64_t q = 0, r = 0;
	if (d == 0) {
		/* Matches the RISC-V divu convention: all ones, remainder = dividend. */
		*rem = n;
		return ~0ull;
	}
	if ((n >> 32) == 0 && (d >> 32) == 0) {
		*rem = (uint32_t)n % (uint32_t)d;
		return (uint32_t)n / (uint32_t)d;
	}
	/* Restoring division, one quotient bit per step; constant shifts only, so gcc needs
	 * none of its own 64-bit shift helpers either. */
	for (int i = 0; i < 64; i++) {
		r = (r << 1) | (n >> 63);
		n <<= 1;
		q <<= 1;
		if (r >= d) {
			r -= d;
			q |= 1;
		}
	}
	*rem = r;
	return q;
}

uint64_t __udivdi3(uint64_t n, uint64_t d);
uint64_t __umoddi3(uint64_t n, uint64_t d);

uint64_t __udivdi3(uint64_t n, uint64_t d)
{
	uint64_t r;
	return divmod64(n, d, &r);
}

uint64_t __umoddi3(uint64_t n, uint64_t d)
{
	uint64_t r;
	divmod64(n, d, &r);
	return r;
}
