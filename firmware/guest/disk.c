/* The guest's own use of the virtio-blk disk (lib/virtio-blk.c, identity-mapped buffers,
 * completions awaited on the PLIC interrupt): find the data partition of the boot format
 * (MBR type 0xda) and offer `disk write|read|verify`. Data written is position-dependent,
 * so a verify also catches sectors that landed in the wrong place: the 32-bit
 * little-endian word at byte offset o of the partition is PATTERN ^ o. */
#include "guest.h"
#include "../lib/mbr.h"
#include "../lib/string.h"
#include "../lib/csr.h"

#define MIB (1u << 20)
#define DEFAULT_PATTERN 0x5a5a5a5au

struct vblk disk;
int disk_ready;
volatile uint32_t disk_irqs;
uint32_t data_lba, data_sectors;
uint32_t platform_timebase;

static uint8_t iobuf[VBLK_MAX_REQUEST] __attribute__((aligned(4096)));

uint64_t platform_time(void)
{
	return time_now();
}

/* virtio-mmio slot n raises PLIC source 1 + n on the virt board. */
void disk_interrupt(uint32_t irq)
{
	if (irq == 1u + (uint32_t)disk.slot && vblk_ack_interrupt(&disk))
		disk_irqs++;
}

/* Sleep until the completion interrupt (or the next tick). SIE is off across the check and
 * the wfi so the interrupt cannot be taken between them; wfi still wakes on it, and it is
 * taken as soon as SIE is back on. */
static void wait_for_completion(volatile uint16_t *used_idx, uint16_t seen)
{
	csr_clear(sstatus, MSTATUS_SIE);
	if (*used_idx == seen)
		idle();
	csr_set(sstatus, MSTATUS_SIE);
}

void disk_init(void)
{
	const char *why = "";
	platform_timebase = gm.timebase;
	if (vblk_find(&disk) < 0) {
		printf("virtio-blk: none found; the disk commands are off\n");
		return;
	}
	if (vblk_init(&disk, &why)) {
		printf("virtio-blk: slot %u: %s\n", disk.slot, why);
		return;
	}
	printf("virtio-blk: slot %u, virtio-mmio version %u, %u sectors%s%s, PLIC irq %u\n", disk.slot,
	       disk.version, (uint32_t)disk.capacity, disk.has_flush ? ", flush" : "",
	       disk.read_only ? ", read-only" : "", 1u + (uint32_t)disk.slot);
	plic_enable(1u + (uint32_t)disk.slot);
	csr_set(sie, 1u << IRQ_S_EXT);
	disk.wait = wait_for_completion;
	struct mbr_partition parts[4];
	if (vblk_read(&disk, 0, iobuf, VBLK_SECTOR) == 0) {
		int n = mbr_read(iobuf, parts);
		for (int i = 0; i < n; i++) {
			if (parts[i].type != MBR_TYPE_DATA || parts[i].first_lba >= disk.capacity)
				continue;
			data_lba = parts[i].first_lba;
			data_sectors = parts[i].sectors;
			if ((uint64_t)data_lba + data_sectors > disk.capacity)
				data_sectors = (uint32_t)disk.capacity - data_lba;
			printf("virtio-blk: data partition %u at LBA %u, %u KiB\n", parts[i].number, data_lba,
			       data_sectors / 2);
			disk_ready = 1;
			return;
		}
	}
	printf("virtio-blk: no data partition (MBR type 0x%x); the disk commands are off\n", MBR_TYPE_DATA);
}

static void fill_pattern(uint32_t offset, uint32_t bytes, uint32_t pattern)
{
	uint32_t *w = (uint32_t *)iobuf;
	for (uint32_t i = 0; i < bytes / 4; i++)
		w[i] = pattern ^ (offset + 4 * i);
}

/* Writes `bytes` of the pattern from the start of the partition, then flushes. */
int disk_fill(uint32_t bytes, uint32_t pattern, uint64_t *elapsed)
{
	uint64_t spent = 0;
	for (uint32_t off = 0; off < bytes; off += VBLK_MAX_REQUEST) {
		uint32_t n = bytes - off < VBLK_MAX_REQUEST ? bytes - off : VBLK_MAX_REQUEST;
		if (console_key_pressed())
			return DISK_STOPPED;
		fill_pattern(off, n, pattern);
		uint64_t t0 = time_now();
		int r = vblk_write(&disk, data_lba + off / VBLK_SECTOR, iobuf, n);
		spent += time_now() - t0;
		if (r)
			return r;
	}
	uint64_t t0 = time_now();
	int r = vblk_flush(&disk);
	spent += time_now() - t0;
	if (elapsed)
		*elapsed = spent;
	return r;
}

/* Reads `bytes` from the start of the partition, discarding them (for bench disk). */
int disk_drain(uint32_t bytes, uint64_t *elapsed)
{
	uint64_t t0 = time_now();
	for (uint32_t off = 0; off < bytes; off += VBLK_MAX_REQUEST) {
		uint32_t n = bytes - off < VBLK_MAX_REQUEST ? bytes - off : VBLK_MAX_REQUEST;
		if (console_key_pressed())
			return DISK_STOPPED;
		int r = vblk_read(&disk, data_lba + off / VBLK_SECTOR, iobuf, n);
		if (r)
			return r;
	}
	*elapsed = time_now() - t0;
	return 0;
}

/* CRC-32 (IEEE 802.3, reflected, as zlib computes it), bit by bit: slow but small. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint32_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

static void disk_read_or_verify(int verify, uint32_t bytes, uint32_t pattern, const char *cmd)
{
	uint32_t crc = 0;
	for (uint32_t off = 0; off < bytes; off += VBLK_MAX_REQUEST) {
		uint32_t n = bytes - off < VBLK_MAX_REQUEST ? bytes - off : VBLK_MAX_REQUEST;
		if (console_key_pressed()) {
			printf("%s: stopped by a key after %u KiB\n", cmd, off / 1024);
			return;
		}
		int r = vblk_read(&disk, data_lba + off / VBLK_SECTOR, iobuf, n);
		if (r) {
			printf("%s: error %d reading LBA %u\n", cmd, r, data_lba + off / VBLK_SECTOR);
			return;
		}
		if (!verify) {
			crc = crc32_update(crc, iobuf, n);
			continue;
		}
		const uint32_t *w = (const uint32_t *)iobuf;
		for (uint32_t i = 0; i < n / 4; i++) {
			uint32_t at = off + 4 * i, want = pattern ^ at;
			if (w[i] != want) {
				printf("%s: mismatch at byte 0x%x (LBA %u): 0x%08x, expected 0x%08x\n", cmd, at,
				       data_lba + at / VBLK_SECTOR, w[i], want);
				return;
			}
		}
	}
	if (verify)
		printf("%s: OK %u MiB pattern=0x%08x\n", cmd, bytes / MIB, pattern);
	else
		printf("%s: %u MiB crc32=0x%08x\n", cmd, bytes / MIB, crc);
}

void cmd_disk(int argc, char **argv)
{
	uint32_t mib, pattern = DEFAULT_PATTERN;
	if (argc < 3 || argc > 4 || (strcmp(argv[1], "write") && strcmp(argv[1], "read") && strcmp(argv[1], "verify"))) {
		printf("disk: usage: disk write|read|verify MIB [PATTERN]\n");
		return;
	}
	if (!disk_ready) {
		printf("disk: no data partition on a virtio-blk disk\n");
		return;
	}
	/* MIB is bounded by the data partition's size, PATTERN by its 32 bits. */
	uint32_t max = data_sectors / (MIB / VBLK_SECTOR);
	if (max == 0) {
		printf("disk: the data partition is smaller than 1 MiB\n");
		return;
	}
	if (arg_u32("disk", "MIB", argv[2], 1, max, &mib) ||
	    (argc == 4 && arg_u32("disk", "PATTERN", argv[3], 0, 0xffffffffu, &pattern)))
		return;
	char cmd[16] = "disk ";
	memcpy(cmd + 5, argv[1], strlen(argv[1]) + 1);
	if (argv[1][0] == 'w') {
		int r = disk_fill(mib * MIB, pattern, NULL);
		if (r == DISK_STOPPED)
			printf("%s: stopped by a key\n", cmd);
		else if (r)
			printf("%s: error %d\n", cmd, r);
		else
			printf("%s: OK %u MiB pattern=0x%08x\n", cmd, mib, pattern);
		return;
	}
	disk_read_or_verify(argv[1][0] == 'v', mib * MIB, pattern, cmd);
}
