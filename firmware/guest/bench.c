/* Timed workloads that print key=value lines, for comparing minivm with QEMU on the same
 * machine: a fixed integer loop (its checksum proves both ran the same work) and sequential
 * 64 KiB writes then reads over the data partition. */
#include "guest.h"
#include "../lib/string.h"

#define MIB (1u << 20)
#define DEFAULT_ITERATIONS 1000000u

/* Iterations between looks at the keyboard: a few milliseconds of work. */
#define CPU_CHUNK 65536u

/* Multiply, divide, shift and branch: a little of everything an interpreter dispatches. */
static void cpu_work(uint32_t iterations, uint32_t *xp, uint32_t *yp)
{
	uint32_t x = *xp, y = *yp;
	for (uint32_t i = 0; i < iterations; i++) {
		x = x * 1664525u + 1013904223u;
		y ^= x >> 13;
		y += x % 97u;
		if (y & 1)
			y = (y << 3) | (y >> 29);
	}
	*xp = x, *yp = y;
}

static void bench_cpu(uint32_t iterations)
{
	uint64_t t0 = time_now();
	uint32_t x = 1, y = 0, done = 0;
	/* In chunks, so that a key stops a long run; the checksum is the same as in one go. */
	while (done < iterations) {
		uint32_t n = iterations - done < CPU_CHUNK ? iterations - done : CPU_CHUNK;
		cpu_work(n, &x, &y);
		done += n;
		if (done < iterations && console_key_pressed()) {
			printf("bench cpu: stopped by a key after %u iterations\n", done);
			return;
		}
	}
	uint32_t sum = x ^ y;
	uint64_t t = time_now() - t0;
	uint32_t us = (uint32_t)(t * 1000000 / gm.timebase);
	printf("bench cpu: iterations=%u ms=%u us=%u checksum=0x%08x\n", iterations, us / 1000, us, sum);
}

static uint32_t kib_per_s(uint32_t bytes, uint64_t t)
{
	uint64_t us = t * 1000000 / gm.timebase;
	return us ? (uint32_t)((uint64_t)bytes * 1000000 / 1024 / us) : 0;
}

static void bench_disk(uint32_t mib)
{
	if (!disk_ready) {
		printf("bench disk: no data partition on a virtio-blk disk\n");
		return;
	}
	uint32_t max = data_sectors / (MIB / VBLK_SECTOR);
	if (mib == 0 || mib > max) {
		printf("bench disk: MIB must be 1..%u\n", max);
		return;
	}
	uint32_t bytes = mib * MIB;
	uint64_t tw, tr;
	uint64_t before = disk.requests;
	int r = disk_fill(bytes, 0x62656e63u /* "benc" */, &tw);
	if (r == 0)
		r = disk_drain(bytes, &tr);
	if (r == DISK_STOPPED) {
		printf("bench disk: stopped by a key\n");
		return;
	}
	if (r) {
		printf("bench disk: error %d\n", r);
		return;
	}
	printf("bench disk: bytes=%u request=%u requests=%u write_ms=%u read_ms=%u write_kib_s=%u read_kib_s=%u\n",
	       bytes, VBLK_MAX_REQUEST, (uint32_t)(disk.requests - before), time_ms(tw), time_ms(tr),
	       kib_per_s(bytes, tw), kib_per_s(bytes, tr));
}

void cmd_bench(int argc, char **argv)
{
	uint32_t n = 0;
	if (argc >= 2 && strcmp(argv[1], "cpu") == 0) {
		if (argc == 3 && arg_u32("bench cpu", "ITERATIONS", argv[2], 1, 0xffffffffu, &n))
			return;
		bench_cpu(argc == 3 ? n : DEFAULT_ITERATIONS);
		return;
	}
	if (argc >= 2 && strcmp(argv[1], "disk") == 0) {
		uint32_t max = data_sectors / (MIB / VBLK_SECTOR);
		if (argc == 3 && (!disk_ready || max == 0)) {
			bench_disk(0);
			return;
		}
		if (argc == 3 && arg_u32("bench disk", "MIB", argv[2], 1, max, &n))
			return;
		bench_disk(argc == 3 ? n : max);
		return;
	}
	printf("bench: usage: bench cpu [ITERATIONS] | bench disk [MIB]\n");
}
