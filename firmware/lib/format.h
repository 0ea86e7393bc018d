/* A small printf: %c %s %d %u %x with optional 0-padding/width and l/ll size, enough for
 * boot banners and the shell's machine-readable lines. Output goes through `emit`. */
#ifndef MINIVM_FORMAT_H
#define MINIVM_FORMAT_H
#include <stdarg.h>
#include "types.h"

typedef void (*emit_fn)(char c);
void vformat(emit_fn emit, const char *fmt, va_list ap);

#endif
