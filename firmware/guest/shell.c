/* The serial shell: one line, split on spaces, looked up in a table. Every command prints
 * lines that start with its own name, so tests and scripts can find the answer. */
#include "guest.h"
#include "../lib/string.h"

/* One more than any command takes, so that a line with too many words is seen as such. */
#define MAX_ARGS 8

struct command {
	const char *name;
	/* Arguments after the name that the command takes at most: more are refused here. */
	int max_args;
	const char *usage;
	void (*run)(int argc, char **argv);
};

int arg_u32(const char *cmd, const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint32_t v = 0, base = 10;
	const char *p = s;
	int ok = 1;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	if (!*p)
		ok = 0;
	for (; ok && *p; p++) {
		uint32_t d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			ok = 0;
		/* v * base + d must stay below 2^32: refuse instead of wrapping. */
		if (ok && v > (0xffffffffu - d) / base)
			ok = 0;
		if (ok)
			v = v * base + d;
	}
	if (ok && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	printf("%s: %s must be a number from %u to %u, not '%s'\n", cmd, what, min, max, s);
	return -1;
}

static void cmd_help(int argc, char **argv);

static void cmd_uptime(int argc, char **argv)
{
	(void)argc, (void)argv;
	uint64_t t = time_now();
	uint32_t ms = time_ms(t);
	printf("uptime: %u.%03u s ticks=%u disk_irqs=%u spurious_irqs=%u\n", ms / 1000, ms % 1000,
	       (uint32_t)uptime_ticks(), disk_irqs, spurious_irqs);
}

void system_reset(uint32_t type, uint32_t reason)
{
	sbi_call(SBI_EXT_SRST, 0, type, reason, 0);
	printf("%s: the firmware refused (no SBI SRST?)\n", type ? "reboot" : "halt");
}

static void cmd_halt(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("halt: powering off\n");
	system_reset(0, 0);
}

static void cmd_reboot(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("reboot: resetting the machine\n");
	system_reset(1, 0);
}

static const struct command commands[] = {
	{ "help", 0, "help                        this list", cmd_help },
	{ "dirty", 3, "dirty MIB [RATE_MIB_S] [SECONDS]\n"
		   "                              rewrite a counter in every page of MIB MiB at 0x81000000\n"
		   "                              (0 = no rate limit) until a key is pressed or SECONDS pass",
	  cmd_dirty },
	{ "check", 0, "check                       verify the dirty pages' counters: OK or the first bad page",
	  cmd_check },
	{ "disk", 3, "disk write|read|verify MIB [PATTERN]\n"
		  "                              fill / checksum / compare the data partition; each 32-bit\n"
		  "                              word holds PATTERN ^ its byte offset (default 0x5a5a5a5a);\n"
		  "                              a key stops it",
	  cmd_disk },
	{ "bench", 2, "bench cpu [ITERATIONS] | bench disk [MIB]\n"
		   "                              timed workloads with key=value results (bench disk\n"
		   "                              overwrites the data partition); a key stops it",
	  cmd_bench },
	{ "sbi", 0, "sbi                         probe the firmware: version, extensions, HSM, IPI, RFENCE",
	  cmd_sbi },
	{ "uptime", 0, "uptime                      time since reset, timer and disk interrupts taken", cmd_uptime },
	{ "halt", 0, "halt                        power off (SBI SRST shutdown)", cmd_halt },
	{ "reboot", 0, "reboot                      reset the machine (SBI SRST cold reboot)", cmd_reboot },
};

static void cmd_help(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("help: commands\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %s\n", commands[i].usage);
}

static int split(char *line, char **argv)
{
	int argc = 0;
	while (*line && argc < MAX_ARGS) {
		while (*line == ' ' || *line == '\t')
			*line++ = '\0';
		if (!*line)
			break;
		argv[argc++] = line;
		while (*line && *line != ' ' && *line != '\t')
			line++;
	}
	return argc;
}

void shell_run(void)
{
	static char line[128];
	char *argv[MAX_ARGS];
	for (;;) {
		if (plic_stuck == 1) {
			/* Said here, not in the trap handler, which may have interrupted a printf. */
			printf("plic: supervisor external interrupt stuck pending (1000 claims of 0); "
			       "masked, the disk polls\n");
			plic_stuck = 2;
		}
		printf("minivm$ ");
		console_readline(line, sizeof(line));
		int argc = split(line, argv);
		if (argc == 0)
			continue;
		size_t i;
		for (i = 0; i < ARRAY_SIZE(commands); i++) {
			if (strcmp(argv[0], commands[i].name) == 0) {
				if (argc - 1 > commands[i].max_args)
					printf("%s: too many arguments; usage: %s\n", argv[0], commands[i].usage);
				else
					commands[i].run(argc, argv);
				break;
			}
		}
		if (i == ARRAY_SIZE(commands))
			printf("%s: unknown command (try help)\n", argv[0]);
	}
}
