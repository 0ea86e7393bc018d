/* The small tools of the shell, each a few system calls: what `cat`, `ls`, `mount`, `uptime`,
 * `free`, `halt` and `reboot` are underneath (read(2), getdents64(2), mount(2), /proc files
 * and reboot(2)). */
#include "mvsh.h"

void cmd_echo(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		out("%s%s", argv[i], i + 1 < argc ? " " : "");
	out("\n");
}

void cmd_cat(int argc, char **argv)
{
	static char buf[4096];
	if (argc < 2) {
		out("cat: usage: cat FILE...\n");
		return;
	}
	for (int i = 1; i < argc; i++) {
		int fd = open(argv[i], O_RDONLY, 0);
		if (fd < 0) {
			out("cat: %s: errno %d\n", argv[i], errno);
			continue;
		}
		int n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			write(1, buf, n);
		if (n < 0)
			out("cat: %s: read errno %d\n", argv[i], errno);
		close(fd);
	}
}

#define MAX_NAMES 256

void cmd_ls(int argc, char **argv)
{
	static char dents[4096];
	static char names[MAX_NAMES][64];
	static char kinds[MAX_NAMES];
	const char *dir = argc > 1 ? argv[1] : ".";
	int fd = open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		out("ls: %s: errno %d\n", dir, errno);
		return;
	}
	int count = 0, n;
	while ((n = getdents64(fd, (struct linux_dirent64 *)dents, sizeof(dents))) > 0) {
		for (int off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(dents + off);
			off += d->d_reclen;
			if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..") || count == MAX_NAMES)
				continue;
			strlcpy(names[count], d->d_name, sizeof(names[count]));
			kinds[count++] = d->d_type == 4 /* DT_DIR */ ? '/' : d->d_type == 10 /* DT_LNK */ ? '@' : 0;
		}
	}
	close(fd);
	/* Insertion sort: directory order differs between filesystems, sorted output does not. */
	for (int i = 1; i < count; i++) {
		char name[64], kind = kinds[i];
		memcpy(name, names[i], sizeof(name));
		int j = i;
		for (; j > 0 && strcmp(names[j - 1], name) > 0; j--) {
			memcpy(names[j], names[j - 1], sizeof(name));
			kinds[j] = kinds[j - 1];
		}
		memcpy(names[j], name, sizeof(name));
		kinds[j] = kind;
	}
	for (int i = 0; i < count; i++)
		out("%s%s%s", names[i], kinds[i] == '/' ? "/" : kinds[i] == '@' ? "@" : "", i + 1 < count ? "  " : "\n");
}

void cmd_mount(int argc, char **argv)
{
	if (argc == 1) {
		char *cat[] = { "cat", "/proc/mounts" };
		cmd_cat(2, cat);
		return;
	}
	if (argc < 4 || (argc == 5 && strcmp(argv[4], "ro"))) {
		out("mount: usage: mount [DEV DIR TYPE [ro]]\n");
		return;
	}
	if (mount(argv[1], argv[2], argv[3], argc == 5 ? 1 /* MS_RDONLY */ : 0, NULL) < 0)
		out("mount: %s on %s: errno %d\n", argv[1], argv[2], errno);
}

/* The first line of /proc/uptime is "SECONDS.CC IDLE.CC"; /proc/loadavg starts "1m 5m 15m". */
void cmd_uptime(int argc, char **argv)
{
	(void)argc, (void)argv;
	char up[64], load[64];
	if (read_small("/proc/uptime", up, sizeof(up)) <= 0 || read_small("/proc/loadavg", load, sizeof(load)) <= 0) {
		out("uptime: /proc is not mounted\n");
		return;
	}
	char *sp = strchr(up, ' ');
	if (sp)
		*sp = 0;
	int fields = 0;
	for (char *p = load; *p; p++)
		if (*p == ' ' && ++fields == 3)
			*p = 0;
	out("uptime: %s s, load average %s\n", up, load);
}

/* "Key:   1234 kB" from /proc/meminfo, in KiB; 0 if absent. */
static unsigned int meminfo(const char *text, const char *key)
{
	int len = (int)strlen(key);
	for (const char *p = text; *p;) {
		if (!memcmp(p, key, len) && p[len] == ':') {
			p += len + 1;
			while (*p == ' ')
				p++;
			unsigned int v = 0;
			while (*p >= '0' && *p <= '9')
				v = v * 10 + (unsigned int)(*p++ - '0');
			return v;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

void cmd_free(int argc, char **argv)
{
	(void)argc, (void)argv;
	static char text[2048];
	if (read_small("/proc/meminfo", text, sizeof(text)) <= 0) {
		out("free: /proc is not mounted\n");
		return;
	}
	unsigned int total = meminfo(text, "MemTotal"), freek = meminfo(text, "MemFree");
	unsigned int cache = meminfo(text, "Buffers") + meminfo(text, "Cached");
	unsigned int avail = meminfo(text, "MemAvailable");
	out("free: KiB     total      used      free  buff/cache  available\n");
	out("free: Mem: %9u %9u %9u %11u %10u\n", total, total - freek - cache, freek, cache, avail);
}

void cmd_sync(int argc, char **argv)
{
	(void)argc, (void)argv;
	my_syscall0(__NR_sync);
}

/* reboot(2): the kernel stops its devices, then calls pm_power_off / the restart handlers,
 * which on minivm and QEMU are the SBI SRST extension. */
void cmd_halt(int argc, char **argv)
{
	(void)argc, (void)argv;
	out("halt: powering off\n");
	my_syscall0(__NR_sync);
	long r = sys_reboot_cmd(LINUX_REBOOT_CMD_POWER_OFF);
	out("halt: reboot(2) failed: %d\n", (int)r);
}

void cmd_reboot(int argc, char **argv)
{
	(void)argc, (void)argv;
	out("reboot: restarting the machine\n");
	my_syscall0(__NR_sync);
	long r = sys_reboot_cmd(LINUX_REBOOT_CMD_RESTART);
	out("reboot: reboot(2) failed: %d\n", (int)r);
}
