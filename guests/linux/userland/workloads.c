/* The teaching guest's workloads (firmware/guest/dirty.c, disk.c, bench.c), as a Linux
 * process does them: the dirty region is anonymous memory from mmap(2), the disk is the
 * data partition's block device opened O_DIRECT (so reads come from the disk, not the page
 * cache), the clock is clock_gettime(CLOCK_MONOTONIC). The output lines and the invariants
 * (page counters, PATTERN ^ offset, the CPU checksum) are the teaching guest's, so results
 * compare across the two guests and across minivm and QEMU. */
#include "mvsh.h"

#define PAGE 4096u
#define PROT_RW (PROT_READ | PROT_WRITE)
#define MAP_PRIVATE_ANON (MAP_PRIVATE | MAP_ANONYMOUS)

/* --- dirty / check: byte 0 of each page is a u8 counter, bytes 4..7 the page's address. */

static unsigned char *dirty_base;
static unsigned int dirty_pages;

#define MAX_RATE_MIB_S 1000000u
#define MAX_SECONDS 1000000u

static unsigned int ms_of(unsigned long long ns)
{
	return (unsigned int)(ns / 1000000u);
}

void cmd_dirty(int argc, char **argv)
{
	unsigned int mib, rate = 0, seconds = 0;
	if (argc < 2) {
		out("dirty: usage: dirty MIB [RATE_MIB_S] [SECONDS]\n");
		return;
	}
	/* Leave the kernel room: at most what /proc/meminfo calls available, less 8 MiB. */
	char text[2048];
	unsigned int limit = 16;
	if (read_small("/proc/meminfo", text, sizeof(text)) > 0) {
		const char *p = text;
		while (*p && memcmp(p, "MemAvailable:", 13))
			while (*p && *p++ != '\n')
				;
		unsigned int kib = 0;
		for (p += *p ? 13 : 0; *p == ' '; p++)
			;
		while (*p >= '0' && *p <= '9')
			kib = kib * 10 + (unsigned int)(*p++ - '0');
		limit = kib / 1024 > 8 ? kib / 1024 - 8 : 1;
	}
	if (arg_u32("dirty", "MIB", argv[1], 1, limit, &mib) ||
	    (argc > 2 && arg_u32("dirty", "RATE_MIB_S", argv[2], 0, MAX_RATE_MIB_S, &rate)) ||
	    (argc > 3 && arg_u32("dirty", "SECONDS", argv[3], 0, MAX_SECONDS, &seconds)))
		return;
	if (dirty_base) {
		munmap(dirty_base, dirty_pages * PAGE);
		dirty_base = NULL;
		dirty_pages = 0;
	}
	unsigned int pages = mib * (MIB / PAGE);
	void *region = mmap(NULL, pages * PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_POPULATE, -1, 0);
	if (region == MAP_FAILED) {
		out("dirty: mmap of %u MiB failed: errno %d\n", mib, errno);
		return;
	}
	unsigned char *base = region;
	for (unsigned int p = 0; p < pages; p++) {
		unsigned char *page = base + p * PAGE;
		page[0] = 0;
		*(unsigned int *)(page + 4) = (unsigned int)(unsigned long)page;
	}
	dirty_base = base;
	dirty_pages = pages;
	out("dirty: %u MiB (%u pages) at 0x%08x, ", mib, pages, (unsigned int)(unsigned long)base);
	if (rate)
		out("%u MiB/s, ", rate);
	else
		out("no rate limit, ");
	if (seconds)
		out("for %u s or until Enter is pressed\n", seconds);
	else
		out("until Enter is pressed\n");

	unsigned long long start = now_ns(), now = start;
	unsigned long long end = start + (unsigned long long)seconds * 1000000000ull;
	unsigned long long writes = 0;
	unsigned int p = 0, sweeps = 0;
	for (;;) {
		volatile unsigned char *counter = base + p * PAGE;
		*counter = (unsigned char)(*counter + 1);
		writes++;
		if (++p == pages) {
			p = 0;
			sweeps++;
		}
		if (writes % 64)
			continue;
		if (input_pending())
			break;
		now = now_ns();
		if (seconds && now >= end)
			break;
		if (rate) {
			/* pages allowed so far = elapsed ms * rate * 256 pages per MiB / 1000 */
			unsigned long long allowed = (now - start) / 1000000u * rate * (MIB / PAGE) / 1000u;
			while (writes > allowed) {
				sleep_ns(1000000);
				if (input_pending())
					goto stop;
				now = now_ns();
				if (seconds && now >= end)
					goto stop;
				allowed = (now - start) / 1000000u * rate * (MIB / PAGE) / 1000u;
			}
		}
	}
stop:
	now = now_ns();
	if (input_pending()) {
		char discard[64];
		read(0, discard, sizeof(discard));
	}
	unsigned int ms = ms_of(now - start);
	unsigned int mib_s = ms ? (unsigned int)((writes * PAGE * 1000 / ms + MIB / 2) / MIB) : 0;
	out("dirty: stopped sweeps=%u pages=%u ms=%u mib_s=%u\n", sweeps, (unsigned int)writes, ms, mib_s);
}

void cmd_check(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (!dirty_pages) {
		out("check: no dirty region yet (run dirty first)\n");
		return;
	}
	unsigned char last = dirty_base[0];
	int stepped = 0;
	unsigned int step = 0;
	for (unsigned int p = 0; p < dirty_pages; p++) {
		const unsigned char *page = dirty_base + p * PAGE;
		unsigned int addr = (unsigned int)(unsigned long)page, tag = *(const unsigned int *)(page + 4);
		if (tag != addr) {
			out("check: bad page %u at 0x%08x: holds the tag of 0x%08x\n", p, addr, tag);
			return;
		}
		if (page[0] == last)
			continue;
		if (!stepped && page[0] == (unsigned char)(last - 1)) {
			stepped = 1;
			step = p;
			last = page[0];
			continue;
		}
		out("check: bad page %u at 0x%08x: counter %u after %u\n", p, addr, page[0], last);
		return;
	}
	if (stepped)
		out("check: OK pages=%u first=%u last=%u step=%u\n", dirty_pages, dirty_base[0], last, step);
	else
		out("check: OK pages=%u first=%u last=%u step=none\n", dirty_pages, dirty_base[0], last);
}

/* --- disk: the first virtio-blk disk's MBR partition of type 0xda, as /dev/vdaN. */

#define REQUEST (64u * 1024u)
#define DEFAULT_PATTERN 0x5a5a5a5au
#define MBR_TYPE_DATA 0xda

static unsigned char iobuf[REQUEST] __attribute__((aligned(4096)));

struct data_part {
	char path[16];
	unsigned int sectors;
};

static int find_data_partition(struct data_part *dp)
{
	int fd = open("/dev/vda", O_RDONLY, 0);
	if (fd < 0) {
		out("disk: /dev/vda: errno %d (no virtio-blk disk?)\n", errno);
		return -1;
	}
	int n = read(fd, iobuf, 512);
	close(fd);
	if (n != 512 || iobuf[510] != 0x55 || iobuf[511] != 0xaa) {
		out("disk: /dev/vda has no MBR\n");
		return -1;
	}
	for (int i = 0; i < 4; i++) {
		const unsigned char *e = iobuf + 446 + 16 * i;
		if (e[4] != MBR_TYPE_DATA)
			continue;
		strlcpy(dp->path, "/dev/vda1", sizeof(dp->path));
		dp->path[8] = (char)('1' + i);
		dp->sectors = (unsigned int)e[12] | (unsigned int)e[13] << 8 | (unsigned int)e[14] << 16 | (unsigned int)e[15] << 24;
		return 0;
	}
	out("disk: no data partition (MBR type 0x%x) on /dev/vda\n", MBR_TYPE_DATA);
	return -1;
}

/* Writes `bytes` of the pattern from the partition's start, then fsync (a virtio FLUSH). */
static int disk_fill(const struct data_part *dp, unsigned int bytes, unsigned int pattern, unsigned long long *elapsed)
{
	int fd = open(dp->path, O_RDWR | O_DIRECT, 0);
	if (fd < 0)
		return -errno;
	unsigned long long t0 = now_ns();
	int r = 0;
	for (unsigned int off = 0; off < bytes && !r; off += REQUEST) {
		unsigned int n = bytes - off < REQUEST ? bytes - off : REQUEST;
		unsigned int *w = (unsigned int *)iobuf;
		for (unsigned int i = 0; i < n / 4; i++)
			w[i] = pattern ^ (off + 4 * i);
		if (write(fd, iobuf, n) != (ssize_t)n)
			r = -errno;
	}
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (elapsed)
		*elapsed = now_ns() - t0;
	close(fd);
	return r;
}

/* CRC-32 (IEEE 802.3, reflected, as zlib computes it), bit by bit, as the teaching guest. */
static unsigned int crc32_update(unsigned int crc, const unsigned char *p, unsigned int n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

/* mode: 'r' checksum, 'v' compare with the pattern, 'd' only read (bench). */
static int disk_scan(const struct data_part *dp, char mode, unsigned int bytes, unsigned int pattern, const char *cmd,
		     unsigned long long *elapsed)
{
	int fd = open(dp->path, O_RDONLY | O_DIRECT, 0);
	if (fd < 0) {
		out("%s: %s: errno %d\n", cmd, dp->path, errno);
		return -1;
	}
	unsigned long long t0 = now_ns();
	unsigned int crc = 0;
	for (unsigned int off = 0; off < bytes; off += REQUEST) {
		unsigned int n = bytes - off < REQUEST ? bytes - off : REQUEST;
		if (read(fd, iobuf, n) != (ssize_t)n) {
			out("%s: error %d reading sector %u\n", cmd, errno, off / 512);
			close(fd);
			return -1;
		}
		if (mode == 'r')
			crc = crc32_update(crc, iobuf, n);
		if (mode != 'v')
			continue;
		const unsigned int *w = (const unsigned int *)iobuf;
		for (unsigned int i = 0; i < n / 4; i++) {
			unsigned int at = off + 4 * i, want = pattern ^ at;
			if (w[i] != want) {
				out("%s: mismatch at byte 0x%x (sector %u): 0x%08x, expected 0x%08x\n", cmd, at, at / 512, w[i], want);
				close(fd);
				return -1;
			}
		}
	}
	close(fd);
	if (elapsed)
		*elapsed = now_ns() - t0;
	if (mode == 'v')
		out("%s: OK %u MiB pattern=0x%08x\n", cmd, bytes / MIB, pattern);
	else if (mode == 'r')
		out("%s: %u MiB crc32=0x%08x\n", cmd, bytes / MIB, crc);
	return 0;
}

void cmd_disk(int argc, char **argv)
{
	unsigned int mib, pattern = DEFAULT_PATTERN;
	if (argc < 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "read") && strcmp(argv[1], "verify"))) {
		out("disk: usage: disk write|read|verify MIB [PATTERN]\n");
		return;
	}
	struct data_part dp;
	if (find_data_partition(&dp))
		return;
	unsigned int max = dp.sectors / (MIB / 512);
	if (max == 0) {
		out("disk: the data partition is smaller than 1 MiB\n");
		return;
	}
	if (arg_u32("disk", "MIB", argv[2], 1, max, &mib) ||
	    (argc == 4 && arg_u32("disk", "PATTERN", argv[3], 0, 0xffffffffu, &pattern)))
		return;
	char cmd[16] = "disk ";
	strlcpy(cmd + 5, argv[1], sizeof(cmd) - 5);
	if (argv[1][0] == 'w') {
		int r = disk_fill(&dp, mib * MIB, pattern, NULL);
		if (r)
			out("%s: error %d\n", cmd, r);
		else
			out("%s: OK %u MiB pattern=0x%08x\n", cmd, mib, pattern);
		return;
	}
	disk_scan(&dp, argv[1][0], mib * MIB, pattern, cmd, NULL);
}

/* --- bench: the teaching guest's integer loop (same checksum) and sequential disk I/O. */

#define DEFAULT_ITERATIONS 1000000u

static void cpu_work(unsigned int iterations, unsigned int *xp, unsigned int *yp)
{
	unsigned int x = *xp, y = *yp;
	for (unsigned int i = 0; i < iterations; i++) {
		x = x * 1664525u + 1013904223u;
		y ^= x >> 13;
		y += x % 97u;
		if (y & 1)
			y = (y << 3) | (y >> 29);
	}
	*xp = x, *yp = y;
}

static unsigned int kib_per_s(unsigned int bytes, unsigned long long ns)
{
	unsigned long long us = ns / 1000u;
	return us ? (unsigned int)((unsigned long long)bytes * 1000000u / 1024u / us) : 0;
}

void cmd_bench(int argc, char **argv)
{
	unsigned int n;
	if (argc >= 2 && !strcmp(argv[1], "cpu")) {
		n = DEFAULT_ITERATIONS;
		if (argc == 3 && arg_u32("bench cpu", "ITERATIONS", argv[2], 1, 0xffffffffu, &n))
			return;
		unsigned long long t0 = now_ns();
		unsigned int x = 1, y = 0;
		cpu_work(n, &x, &y);
		unsigned int us = (unsigned int)((now_ns() - t0) / 1000u);
		out("bench cpu: iterations=%u ms=%u us=%u checksum=0x%08x\n", n, us / 1000, us, x ^ y);
		return;
	}
	if (argc >= 2 && !strcmp(argv[1], "disk")) {
		struct data_part dp;
		if (find_data_partition(&dp))
			return;
		unsigned int max = dp.sectors / (MIB / 512);
		n = max < 4 ? max : 4;
		if (argc == 3 && arg_u32("bench disk", "MIB", argv[2], 1, max, &n))
			return;
		unsigned long long tw, tr;
		int r = disk_fill(&dp, n * MIB, 0x62656e63u /* "benc" */, &tw);
		if (r) {
			out("bench disk: error %d\n", r);
			return;
		}
		if (disk_scan(&dp, 'd', n * MIB, 0, "bench disk", &tr))
			return;
		out("bench disk: bytes=%u request=%u write_ms=%u read_ms=%u write_kib_s=%u read_kib_s=%u\n", n * MIB, REQUEST,
		    ms_of(tw), ms_of(tr), kib_per_s(n * MIB, tw), kib_per_s(n * MIB, tr));
		return;
	}
	out("bench: usage: bench cpu [ITERATIONS] | bench disk [MIB]\n");
}
