/* The guest's console goes through SBI, not the UART: the Debug Console extension (SBI v2.0
 * chapter 12) when the firmware has it, one legacy putchar/getchar call per byte otherwise.
 * Buffers handed to DBCN are physical addresses, which here equal virtual ones. */
#include "guest.h"
#include "../lib/format.h"

static int have_dbcn;
static char out[256];
static size_t out_len;
static int after_cr; /* a terminal's "\r\n" is one Enter, not two */

void console_init(void)
{
	struct sbiret r = sbi_call(SBI_EXT_BASE, 3, SBI_EXT_DBCN, 0, 0);
	have_dbcn = r.error == 0 && r.value != 0;
}

static void flush(void)
{
	size_t done = 0;
	while (done < out_len) {
		if (have_dbcn) {
			struct sbiret r = sbi_call(SBI_EXT_DBCN, 0, out_len - done, (uintptr_t)out + done, 0);
			if (r.error)
				break;
			done += (size_t)r.value;
		} else {
			sbi_call(SBI_LEGACY_PUTCHAR, 0, (uint8_t)out[done++], 0, 0);
		}
	}
	out_len = 0;
}

static void emit(char c)
{
	if (c == '\n')
		emit('\r');
	if (out_len == sizeof(out))
		flush();
	out[out_len++] = c;
}

void console_write(const char *s, size_t n)
{
	while (n--)
		emit(*s++);
	flush();
}

void printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(emit, fmt, ap);
	va_end(ap);
	flush();
}

int console_getc(void)
{
	for (;;) {
		int c;
		if (have_dbcn) {
			char b;
			struct sbiret r = sbi_call(SBI_EXT_DBCN, 1, 1, (uintptr_t)&b, 0);
			c = r.error == 0 && r.value == 1 ? (uint8_t)b : -1;
		} else {
			c = (int)sbi_call(SBI_LEGACY_GETCHAR, 0, 0, 0, 0).error;
		}
		if (c < 0)
			return -1;
		if (c == '\n' && after_cr) {
			after_cr = 0;
			continue;
		}
		after_cr = c == '\r';
		return c;
	}
}

int console_key_pressed(void)
{
	return console_getc() >= 0;
}

/* Reads one line with echo and backspace; sleeps between keys (the 100 Hz tick wakes us). */
size_t console_readline(char *buf, size_t size)
{
	size_t n = 0;
	for (;;) {
		int c = console_getc();
		if (c < 0) {
			idle();
			continue;
		}
		if (c == '\r' || c == '\n') {
			console_write("\n", 1);
			buf[n] = '\0';
			return n;
		}
		if (c == 0x7f || c == 0x08) {
			if (n) {
				n--;
				console_write("\b \b", 3);
			}
			continue;
		}
		if (c < 0x20 || c > 0x7e || n + 1 >= size)
			continue;
		buf[n++] = (char)c;
		char e = (char)c;
		console_write(&e, 1);
	}
}
