/* MBR entries: status, CHS first, type, CHS last, LBA first (le32), sectors (le32).
 * The CHS fields are ignored, as every LBA-era reader does. */
#include "mbr.h"

int mbr_read(const uint8_t *sector0, struct mbr_partition out[4])
{
	if (sector0[510] != 0x55 || sector0[511] != 0xaa)
		return -1;
	int n = 0;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = sector0 + 446 + 16 * i;
		if (e[4] == 0 || le32(e + 12) == 0)
			continue;
		out[n].number = i + 1;
		out[n].type = e[4];
		out[n].first_lba = le32(e + 8);
		out[n].sectors = le32(e + 12);
		n++;
	}
	return n;
}
