/* Linux 6.1's nolibc (tools/include/nolibc) predates rv32 support: its sys.h names syscalls
 * that the rv32 ABI never had (rv32 is time64-only and has no lseek, wait4, poll, select,
 * stat or gettimeofday), so it does not compile. Declaring those numbers as -1 makes the
 * wrappers compile into calls the kernel answers with -ENOSYS (what later nolibc does);
 * nothing in minivm's userland uses them. The rv32 replacements it does use (llseek,
 * clock_gettime64, statx-free code) are in sys-rv32.h. Include this before nolibc.h. */
#ifndef MINIVM_NOLIBC_RV32_H
#define MINIVM_NOLIBC_RV32_H
#include <asm/unistd.h>
#ifndef __NR_lseek
#define __NR_lseek -1
#endif
#ifndef __NR_gettimeofday
#define __NR_gettimeofday -1
#endif
#ifndef __NR_wait4
#define __NR_wait4 -1
#endif
#if !defined(__NR_ppoll) && !defined(__NR_poll)
#define __NR_poll -1
#endif
#if !defined(__NR_select) && !defined(__NR_pselect6) && !defined(__NR__newselect)
#define __NR_select -1
#endif
#if !defined(__NR_newfstatat) && !defined(__NR_stat)
#define __NR_stat -1
#endif
#endif
