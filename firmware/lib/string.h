/* The few C string routines both binaries need; gcc may also emit calls to mem* itself. */
#ifndef MINIVM_STRING_H
#define MINIVM_STRING_H
#include "types.h"

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* Parses decimal or 0x-hex; returns 0 on success, -1 if `s` is not a whole number. */
int parse_u32(const char *s, uint32_t *out);

#endif
