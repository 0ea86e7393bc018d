/* printf-style formatting without libc; 64-bit values go through divide.c's helpers. */
#include "format.h"

static void emit_number(emit_fn emit, uint64_t v, unsigned base, int negative, int width, char pad)
{
	char buf[24];
	int n = 0;
	do {
		unsigned d = (unsigned)(v % base);
		buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (negative)
		buf[n++] = '-';
	for (int i = n; i < width; i++)
		emit(pad);
	while (n)
		emit(buf[--n]);
}

void vformat(emit_fn emit, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			emit(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, longs = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			longs++;
			fmt++;
		}
		switch (*fmt) {
		case 'c':
			emit((char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int len = 0;
			while (s[len])
				len++;
			for (int i = len; i < width; i++)
				emit(' ');
			while (*s)
				emit(*s++);
			break;
		}
		case 'd': {
			int64_t v = longs >= 2 ? va_arg(ap, int64_t) : va_arg(ap, int32_t);
			emit_number(emit, v < 0 ? (uint64_t)-v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = longs >= 2 ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t);
			emit_number(emit, v, *fmt == 'u' ? 10 : 16, 0, width, pad);
			break;
		}
		case '%':
			emit('%');
			break;
		default:
			emit('%');
			if (*fmt)
				emit(*fmt);
			else
				return;
		}
	}
}
