/* Finding and loading the boot payload (docs/boot-format.md): the first virtio-blk disk,
 * its first MBR partition of type 0x7f (or, on a disk without one, an ELF at sector 0),
 * holding an ELF32 RISC-V executable whose PT_LOAD segments go to their physical addresses
 * (ELF spec: p_paddr; bytes past p_filesz up to p_memsz are zeroed). */
#include "platform.h"
#include "../lib/mbr.h"
#include "../lib/string.h"
#include "../lib/virtio-blk.h"

#define EM_RISCV 243
#define ET_EXEC 2
#define PT_LOAD 1
#define MAX_PHDRS 16

static struct vblk disk;
static uint8_t sector[VBLK_SECTOR] __attribute__((aligned(16)));
static uint32_t sector_lba = ~0u; /* which sector `sector` holds: the ELF header and the
				   * program headers usually share one, and each request costs */
static uint32_t part_lba, part_sectors;

/* Copies `len` bytes at byte `off` of the boot partition to `dst`: whole sectors straight
 * into place, partial ones through a one-sector bounce buffer. */
static int part_read(uint32_t off, void *dst, uint32_t len)
{
	uint8_t *out = dst;
	if ((uint64_t)off + len > (uint64_t)part_sectors * VBLK_SECTOR)
		return -1;
	while (len) {
		uint32_t lba = part_lba + off / VBLK_SECTOR, skip = off % VBLK_SECTOR;
		uint32_t n;
		if (skip == 0 && len >= VBLK_SECTOR) {
			n = len - len % VBLK_SECTOR;
			if (n > VBLK_MAX_REQUEST)
				n = VBLK_MAX_REQUEST;
			if (vblk_read(&disk, lba, out, n))
				return -1;
		} else {
			n = VBLK_SECTOR - skip;
			if (n > len)
				n = len;
			if (lba != sector_lba) {
				sector_lba = ~0u;
				if (vblk_read(&disk, lba, sector, VBLK_SECTOR))
					return -1;
				sector_lba = lba;
			}
			memcpy(out, sector + skip, n);
		}
		off += n;
		out += n;
		len -= n;
	}
	return 0;
}

/* Chooses the partition to boot from sector 0; returns its number, 0 for a raw ELF disk. */
static int pick_partition(void)
{
	struct mbr_partition parts[4];
	if (vblk_read(&disk, 0, sector, VBLK_SECTOR))
		return -1;
	sector_lba = 0;
	if (memcmp(sector, "\177ELF", 4) == 0) {
		part_lba = 0;
		part_sectors = (uint32_t)disk.capacity;
		return 0;
	}
	int n = mbr_read(sector, parts);
	for (int i = 0; i < n; i++) {
		if (parts[i].type == MBR_TYPE_MINIVM_BOOT) {
			part_lba = parts[i].first_lba;
			part_sectors = parts[i].sectors;
			if ((uint64_t)part_lba + part_sectors > disk.capacity)
				part_sectors = part_lba < disk.capacity ? (uint32_t)disk.capacity - part_lba : 0;
			return parts[i].number;
		}
	}
	return -1;
}

/* A segment may land anywhere in RAM except on the firmware or the DTB. */
static int segment_fits(uint32_t addr, uint32_t size)
{
	uint64_t end = (uint64_t)addr + size;
	if (addr < machine.ram_base || end > (uint64_t)machine.ram_base + machine.ram_size)
		return 0;
	if (addr < FW_BASE + FW_SIZE && end > FW_BASE)
		return 0;
	if (machine.dtb && addr < machine.dtb + machine.dtb_size && end > machine.dtb)
		return 0;
	return 1;
}

static uintptr_t load_elf(void)
{
	uint8_t ehdr[52];
	uint8_t phdrs[MAX_PHDRS][32];
	if (part_read(0, ehdr, sizeof(ehdr)) || memcmp(ehdr, "\177ELF\1\1", 6) != 0) {
		printf("minivm-sbi: boot partition does not hold an ELF32 little-endian file\n");
		return 0;
	}
	uint16_t type = (uint16_t)(ehdr[16] | ehdr[17] << 8), machine_id = (uint16_t)(ehdr[18] | ehdr[19] << 8);
	uint32_t entry = le32(ehdr + 24), phoff = le32(ehdr + 28);
	uint16_t phentsize = (uint16_t)(ehdr[42] | ehdr[43] << 8), phnum = (uint16_t)(ehdr[44] | ehdr[45] << 8);
	if (type != ET_EXEC || machine_id != EM_RISCV || phentsize != 32 || phnum == 0 || phnum > MAX_PHDRS) {
		printf("minivm-sbi: ELF is not a RISC-V executable (type %u, machine %u, %u program headers)\n",
		       type, machine_id, phnum);
		return 0;
	}
	if (part_read(phoff, phdrs, 32u * phnum)) {
		printf("minivm-sbi: cannot read the program headers\n");
		return 0;
	}
	uint32_t loaded = 0, segments = 0;
	int entry_ok = 0;
	for (int i = 0; i < phnum; i++) {
		const uint8_t *ph = phdrs[i];
		uint32_t offset = le32(ph + 4), paddr = le32(ph + 12), filesz = le32(ph + 16), memsz = le32(ph + 20);
		if (le32(ph) != PT_LOAD || memsz == 0)
			continue;
		if (filesz > memsz || !segment_fits(paddr, memsz)) {
			printf("minivm-sbi: segment at 0x%08x (+0x%x) lies outside free RAM\n", paddr, memsz);
			return 0;
		}
		if (filesz && part_read(offset, (void *)paddr, filesz)) {
			printf("minivm-sbi: read error loading the segment at 0x%08x\n", paddr);
			return 0;
		}
		memset((void *)(paddr + filesz), 0, memsz - filesz);
		if (entry >= paddr && entry - paddr < memsz)
			entry_ok = 1;
		loaded += filesz;
		segments++;
	}
	if (!entry_ok) {
		printf("minivm-sbi: entry 0x%08x is in no loaded segment\n", entry);
		return 0;
	}
	__asm__ volatile("fence.i" ::: "memory");
	printf("minivm-sbi: loaded %u segments, %u bytes, entry 0x%08x\n", segments, loaded, entry);
	return entry;
}

uintptr_t load_payload(void)
{
	const char *why = "";
	if (vblk_find(&disk) < 0) {
		printf("minivm-sbi: no virtio-blk device in virtio-mmio slots 0-7\n");
		return 0;
	}
	if (vblk_init(&disk, &why)) {
		printf("minivm-sbi: virtio-blk at 0x%08x: %s\n", disk.base, why);
		return 0;
	}
	printf("minivm-sbi: virtio-blk in slot %u at 0x%08x (virtio-mmio version %u), %u sectors\n",
	       disk.slot, disk.base, disk.version, (uint32_t)disk.capacity);
	int part = pick_partition();
	if (part < 0) {
		printf("minivm-sbi: no partition of type 0x%x and no ELF at sector 0\n", MBR_TYPE_MINIVM_BOOT);
		vblk_reset(&disk);
		return 0;
	}
	if (part == 0)
		printf("minivm-sbi: booting the raw ELF at sector 0\n");
	else
		printf("minivm-sbi: booting partition %u (type 0x%x, sectors %u-%u)\n", part,
		       MBR_TYPE_MINIVM_BOOT, part_lba, part_lba + part_sectors - 1);
	uintptr_t entry = load_elf();
	/* The payload brings its own driver; hand it a device that has forgotten our queue. */
	vblk_reset(&disk);
	return entry;
}
