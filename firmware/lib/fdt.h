/* Read-only walk of a flattened device tree (Devicetree Specification v0.4, chapter 5):
 * just enough to find a property by path, e.g. the machine `model` or `/memory` `reg`. */
#ifndef MINIVM_FDT_H
#define MINIVM_FDT_H
#include "types.h"

#define FDT_MAGIC 0xd00dfeedu

/* 0 if `fdt` starts with a valid header, -1 otherwise. */
int fdt_check(const void *fdt);
uint32_t fdt_totalsize(const void *fdt);
/* Finds `prop` of the node at `path` ("/", "/cpus", "/memory"); a path component matches a
 * node name with or without its @unit-address. Returns the value or NULL; *len gets its size. */
const void *fdt_prop(const void *fdt, const char *path, const char *prop, uint32_t *len);
/* Reads `cells` big-endian 32-bit cells (1 or 2) at `p` as one number. */
uint64_t fdt_cells(const void *p, uint32_t cells);

/* The board facts minivm-sbi and the guest both need, with QEMU virt's defaults when the
 * tree lacks them (or there is no tree). */
struct fdt_machine {
	const char *model;  /* points into the tree */
	uint32_t ram_base;
	uint32_t ram_size;  /* trimmed so ram_base + ram_size fits in 32 bits */
	uint32_t ram_mib;   /* the untrimmed size, for people */
	uint32_t timebase;  /* Hz */
	uint32_t size;      /* of the tree itself; 0 without one */
};
/* 0 if `fdt` is a device tree, -1 if not (*m then holds the defaults). */
int fdt_read_machine(const void *fdt, struct fdt_machine *m);

#endif
