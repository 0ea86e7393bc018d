/* The rv32 system calls minivm's userland needs that 6.1's nolibc lacks or gets wrong on
 * rv32 (the ABI has only the 64-bit-time and llseek forms): numbers from the kernel's
 * asm-generic/unistd.h, arguments as include/linux/syscalls.h declares them. */
#ifndef MINIVM_SYS_RV32_H
#define MINIVM_SYS_RV32_H

#include <linux/reboot.h>
#ifndef CLOCK_MONOTONIC
#define CLOCK_MONOTONIC 1
#endif
#ifndef O_DIRECT
#define O_DIRECT 040000 /* asm-generic/fcntl.h */
#endif

struct kernel_timespec64 {
	long long tv_sec;
	long long tv_nsec;
};

/* Monotonic nanoseconds since boot (clock_gettime64, the only clock_gettime rv32 has). */
static inline unsigned long long now_ns(void)
{
	struct kernel_timespec64 ts;
	long r = my_syscall2(__NR_clock_gettime64, CLOCK_MONOTONIC, &ts);
	if (r < 0)
		return 0;
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Sleep (clock_nanosleep_time64: rv32 has no nanosleep). */
static inline void sleep_ns(long long ns)
{
	struct kernel_timespec64 ts = { ns / 1000000000, ns % 1000000000 };
	my_syscall4(__NR_clock_nanosleep_time64, CLOCK_MONOTONIC, 0, &ts, NULL);
}

/* lseek for 32-bit ABIs: the offset travels as two halves, the result comes back in memory. */
static inline long long seek_to(int fd, long long offset)
{
	long long result = 0;
	long r = my_syscall5(__NR_llseek, fd, (unsigned long)(offset >> 32), (unsigned long)offset, &result, SEEK_SET);
	return r < 0 ? r : result;
}

/* Bytes waiting on fd 0. The console is in canonical mode, so this counts only whole lines:
 * a workload that runs "until a key" stops at Enter. */
static inline int input_pending(void)
{
	int n = 0;
	return ioctl(0, FIONREAD, &n) == 0 && n > 0;
}

static inline long sys_reboot_cmd(unsigned long cmd)
{
	return my_syscall4(__NR_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, cmd, 0);
}

#endif
