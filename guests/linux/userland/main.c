/* mvsh's entry: PID 1 duties (init.c-like: mount the kernel's filesystems, move the root from
 * the initramfs to the disk named by root=), then the console shell. PID 1 must never exit
 * (the kernel panics "Attempted to kill init!"), so the shell loops forever. */
#include "mvsh.h"

#define MS_RDONLY 1
#define MS_MOVE 8192

struct command {
	const char *name;
	int max_args;
	const char *usage;
	void (*run)(int argc, char **argv);
};

static void cmd_help(int argc, char **argv);
static void cmd_true(int argc, char **argv) { (void)argc, (void)argv; }

static const struct command commands[] = {
	{ "help", 0, "help                        this list", cmd_help },
	{ "echo", 16, "echo WORDS...               print the words", cmd_echo },
	{ "cat", 16, "cat FILE...                 print files (try /proc/cpuinfo, /proc/interrupts)", cmd_cat },
	{ "ls", 1, "ls [DIR]                    list a directory, sorted", cmd_ls },
	{ "mount", 4, "mount [DEV DIR TYPE [ro]]   mount a filesystem; no argument: list mounts", cmd_mount },
	{ "uptime", 0, "uptime                      seconds since boot and the load average", cmd_uptime },
	{ "free", 0, "free                        memory in KiB, from /proc/meminfo", cmd_free },
	{ "sync", 0, "sync                        write dirty buffers to the disk", cmd_sync },
	{ "dirty", 3, "dirty MIB [RATE_MIB_S] [SECONDS]\n"
		      "                              rewrite a counter in every page of MIB MiB of memory\n"
		      "                              (0 = no rate limit) until Enter is pressed or SECONDS pass",
	  cmd_dirty },
	{ "check", 0, "check                       verify the dirty pages' counters: OK or the first bad page",
	  cmd_check },
	{ "disk", 3, "disk write|read|verify MIB [PATTERN]\n"
		     "                              fill / checksum / compare the data partition (/dev/vdaN,\n"
		     "                              MBR type 0xda) through the block layer (O_DIRECT); each\n"
		     "                              32-bit word holds PATTERN ^ its byte offset",
	  cmd_disk },
	{ "bench", 2, "bench cpu [ITERATIONS] | bench disk [MIB]\n"
		      "                              timed workloads with key=value results", cmd_bench },
	{ "spawn", 17, "spawn N [COMMAND...]        fork + exec + wait N times, running COMMAND (default true)\n"
		       "                              in a new process each time", cmd_spawn },
	{ "true", 16, "true                        do nothing", cmd_true },
	{ "halt", 0, "halt                        power off (reboot(2), then SBI SRST)", cmd_halt },
	{ "reboot", 0, "reboot                      restart the machine (reboot(2), then SBI SRST)", cmd_reboot },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void cmd_help(int argc, char **argv)
{
	(void)argc, (void)argv;
	out("help: commands\n");
	for (unsigned int i = 0; i < NCOMMANDS; i++)
		out("  %s\n", commands[i].usage);
}

/* The value of `key=` on the kernel command line, copied into val; 0 if absent. */
static int cmdline_value(const char *cmdline, const char *key, char *val, int size)
{
	int klen = (int)strlen(key);
	for (const char *p = cmdline; *p;) {
		while (*p == ' ' || *p == '\n')
			p++;
		const char *word = p;
		while (*p && *p != ' ' && *p != '\n')
			p++;
		if (p - word > klen && !memcmp(word, key, klen) && word[klen] == '=') {
			int n = (int)(p - word - klen - 1);
			if (n >= size)
				n = size - 1;
			memcpy(val, word + klen + 1, n);
			val[n] = 0;
			return 1;
		}
	}
	return 0;
}

static int cmdline_flag(const char *cmdline, const char *flag)
{
	int len = (int)strlen(flag);
	for (const char *p = cmdline; *p;) {
		while (*p == ' ' || *p == '\n')
			p++;
		const char *word = p;
		while (*p && *p != ' ' && *p != '\n')
			p++;
		if (p - word == len && !memcmp(word, flag, len))
			return 1;
	}
	return 0;
}

static void mount_or_say(const char *src, const char *dir, const char *type, unsigned long flags)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, flags, NULL) < 0)
		out("init: mount %s on %s: errno %d\n", type, dir, errno);
}

/* From the initramfs to the disk: mount root= on /newroot, move /dev, /proc and /sys under it,
 * make it / (MS_MOVE + chroot, what switch_root does) and exec its /sbin/init. */
static void switch_to_disk(const char *cmdline)
{
	char root[64], type[16] = "ext2";
	if (!cmdline_value(cmdline, "root", root, sizeof(root))) {
		out("init: no root= on the command line; staying in the initramfs\n");
		return;
	}
	cmdline_value(cmdline, "rootfstype", type, sizeof(type));
	int ro = !cmdline_flag(cmdline, "rw");
	mkdir("/newroot", 0755);
	if (mount(root, "/newroot", type, ro ? MS_RDONLY : 0, NULL) < 0) {
		out("init: cannot mount %s (%s): errno %d; staying in the initramfs\n", root, type, errno);
		return;
	}
	static const char *const moved[] = { "/dev", "/proc", "/sys" };
	for (int i = 0; i < 3; i++) {
		char to[32] = "/newroot";
		strncat(to, moved[i], sizeof(to) - sizeof("/newroot"));
		if (mount(moved[i], to, NULL, MS_MOVE, NULL) < 0)
			out("init: move %s: errno %d\n", moved[i], errno);
	}
	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
		out("init: cannot switch to %s: errno %d\n", root, errno);
		return;
	}
	out("init: root is %s (%s, %s)\n", root, type, ro ? "read-only" : "read-write");
	char *argv[] = { "/sbin/init", NULL };
	char *envp[] = { "HOME=/", "TERM=linux", NULL };
	execve("/sbin/init", argv, envp);
	out("init: cannot run /sbin/init on %s: errno %d\n", root, errno);
}

void init_system(void)
{
	if (getpid() != 1)
		return;
	char cmdline[512];
	/* Already done when this is the disk's /sbin/init, exec'd by the initramfs' /init. */
	if (read_small("/proc/cmdline", cmdline, sizeof(cmdline)) >= 0)
		return;
	mount_or_say("devtmpfs", "/dev", "devtmpfs", 0);
	mount_or_say("proc", "/proc", "proc", 0);
	mount_or_say("sysfs", "/sys", "sysfs", 0);
	if (read_small("/proc/cmdline", cmdline, sizeof(cmdline)) < 0)
		cmdline[0] = 0;
	int in_initramfs = open("/etc/initramfs", O_RDONLY, 0);
	if (in_initramfs >= 0) {
		close(in_initramfs);
		switch_to_disk(cmdline);
	}
}

static int split(char *line, char **argv, int max)
{
	int argc = 0;
	for (char *p = line; *p;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			*p++ = 0;
		if (!*p)
			break;
		if (argc == max)
			return -1;
		argv[argc++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
	}
	return argc;
}

static void run_command(int words, char **args)
{
	for (unsigned int i = 0; i < NCOMMANDS; i++) {
		if (strcmp(args[0], commands[i].name))
			continue;
		if (words - 1 > commands[i].max_args)
			out("%s: too many arguments; usage: %s\n", args[0], commands[i].usage);
		else
			commands[i].run(words, args);
		return;
	}
	out("%s: unknown command (try help)\n", args[0]);
}

int main(int argc, char **argv)
{
	/* `mvsh -c COMMAND...`: one command in this process (spawn's children), then exit. */
	if (argc >= 3 && !strcmp(argv[1], "-c") && getpid() != 1) {
		run_command(argc - 2, argv + 2);
		return 0;
	}
	init_system();
	char motd[256];
	if (read_small("/etc/motd", motd, sizeof(motd)) > 0)
		out("%s", motd);
	char line[256];
	char *args[18];
	for (;;) {
		out("linux$ ");
		int n = read(0, line, sizeof(line) - 1);
		if (n <= 0) {
			if (n < 0 && errno != EINTR)
				out("mvsh: console read: errno %d\n", errno);
			continue;
		}
		line[n] = 0;
		int words = split(line, args, 18);
		if (words < 0)
			out("mvsh: too many words\n");
		else if (words > 0)
			run_command(words, args);
	}
}
