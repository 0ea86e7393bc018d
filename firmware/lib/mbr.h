/* The classic MBR partition table (sector 0: four 16-byte entries at offset 446, signature
 * 0x55 0xAA at 510) and the two partition types minivm's boot format gives meaning to;
 * see docs/boot-format.md. */
#ifndef MINIVM_MBR_H
#define MINIVM_MBR_H
#include "types.h"

/* 0x7F is set aside for "individual use and experimental projects": an ELF to boot. */
#define MBR_TYPE_MINIVM_BOOT 0x7f
/* 0xDA is "non-filesystem data": the teaching guest's scratch area for `disk` and `bench`. */
#define MBR_TYPE_DATA 0xda

struct mbr_partition {
	int number;         /* 1..4 */
	uint8_t type;
	uint32_t first_lba;
	uint32_t sectors;
};

/* Fills up to 4 used entries from `sector0`; returns how many, or -1 without the signature. */
int mbr_read(const uint8_t *sector0, struct mbr_partition out[4]);

#endif
