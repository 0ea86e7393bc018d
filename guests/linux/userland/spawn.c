/* `spawn N [COMMAND...]`: what a shell does for every external command, N times over. fork(2)
 * (clone with SIGCHLD: copy-on-write page faults in both processes), execve(2) of this very
 * program through /proc/self/exe (the ELF loader, demand paging from the disk), then
 * waitid(2) for the child's status (rv32 has no wait4). */
#include "mvsh.h"

#define P_ALL 0
#define WEXITED 4

/* siginfo_t for SIGCHLD (include/uapi/asm-generic/siginfo.h): signo, errno, code, then pid,
 * uid, status; 128 bytes in all. */
struct child_info {
	int signo, errnum, code, pid, uid, status;
	int pad[26];
};

void cmd_spawn(int argc, char **argv)
{
	unsigned int n;
	if (argc < 2) {
		out("spawn: usage: spawn N [COMMAND...]\n");
		return;
	}
	if (arg_u32("spawn", "N", argv[1], 1, 1000, &n))
		return;
	char *child_argv[20] = { "mvsh", "-c" };
	int c = 2;
	if (argc == 2)
		child_argv[c++] = "true";
	for (int i = 2; i < argc && c < 19; i++)
		child_argv[c++] = argv[i];
	child_argv[c] = NULL;
	char *envp[] = { NULL };
	unsigned long long t0 = now_ns();
	unsigned int failed = 0;
	for (unsigned int i = 0; i < n; i++) {
		int pid = fork();
		if (pid < 0) {
			out("spawn: fork: errno %d\n", errno);
			return;
		}
		if (pid == 0) {
			execve("/proc/self/exe", child_argv, envp);
			out("spawn: execve: errno %d\n", errno);
			exit(127);
		}
		struct child_info info;
		memset(&info, 0, sizeof(info));
		long r = my_syscall5(__NR_waitid, P_ALL, 0, &info, WEXITED, NULL);
		if (r < 0 || info.pid != pid) {
			out("spawn: waitid: %d (pid %d, expected %d)\n", (int)r, info.pid, pid);
			return;
		}
		if (info.status != 0)
			failed++;
	}
	unsigned int us = (unsigned int)((now_ns() - t0) / 1000u);
	out("spawn: processes=%u failed=%u us_each=%u\n", n, failed, us / n);
}
