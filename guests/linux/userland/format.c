/* Formatted output for the shell: nolibc's printf knows no widths, and the workloads print
 * the teaching guest's exact lines (0x%08x, %u.%03u). Writes go straight to fd 1. */
#include "mvsh.h"
#include <stdarg.h>

struct buf {
	char data[512];
	int len;
};

static void put(struct buf *b, char c)
{
	if (b->len == (int)sizeof(b->data)) {
		write(1, b->data, b->len);
		b->len = 0;
	}
	b->data[b->len++] = c;
}

static void put_number(struct buf *b, unsigned long long v, int base, int width, char pad, int negative)
{
	char digits[24];
	int n = 0;
	do {
		unsigned int d = (unsigned int)(v % (unsigned int)base);
		digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= (unsigned int)base;
	} while (v);
	if (negative)
		digits[n++] = '-';
	for (int i = n; i < width; i++)
		put(b, pad);
	while (n)
		put(b, digits[--n]);
}

void out(const char *fmt, ...)
{
	struct buf b = { .len = 0 };
	va_list ap;
	va_start(ap, fmt);
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			put(&b, *p);
			continue;
		}
		p++;
		char pad = ' ';
		int width = 0, longs = 0;
		if (*p == '0')
			pad = '0', p++;
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (*p++ - '0');
		while (*p == 'l')
			longs++, p++;
		unsigned long long v;
		switch (*p) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			int len = (int)strlen(s);
			for (int i = len; i < width; i++)
				put(&b, ' ');
			while (*s)
				put(&b, *s++);
			break;
		}
		case 'c':
			put(&b, (char)va_arg(ap, int));
			break;
		case 'd': {
			long long d = longs > 1 ? va_arg(ap, long long) : longs ? va_arg(ap, long) : va_arg(ap, int);
			put_number(&b, d < 0 ? (unsigned long long)-d : (unsigned long long)d, 10, width, pad, d < 0);
			break;
		}
		case 'u':
		case 'x':
			v = longs > 1 ? va_arg(ap, unsigned long long) : longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
			put_number(&b, v, *p == 'u' ? 10 : 16, width, pad, 0);
			break;
		case '%':
			put(&b, '%');
			break;
		default:
			put(&b, '%');
			if (*p)
				put(&b, *p);
			else
				p--;
		}
	}
	va_end(ap);
	if (b.len)
		write(1, b.data, b.len);
}

int arg_u32(const char *cmd, const char *what, const char *s, unsigned int min, unsigned int max, unsigned int *v)
{
	unsigned long long n = 0;
	int base = 10, ok = *s != 0;
	const char *p = s;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		base = 16, p += 2, ok = *p != 0;
	for (; *p && ok; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : 99;
		if (d >= base)
			ok = 0;
		n = n * (unsigned int)base + (unsigned int)d;
		if (n > 0xffffffffull)
			ok = 0;
	}
	if (ok && n >= min && n <= max) {
		*v = (unsigned int)n;
		return 0;
	}
	out("%s: %s must be a number from %u to %u, not '%s'\n", cmd, what, min, max, s);
	return -1;
}

int read_small(const char *path, char *buf, int size)
{
	int fd = open(path, O_RDONLY, 0);
	if (fd < 0)
		return -1;
	int len = 0, n;
	while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	return len;
}
