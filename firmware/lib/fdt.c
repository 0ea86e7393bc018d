/* Devicetree Specification v0.4 §5.4: the structure block is a token stream of
 * BEGIN_NODE/END_NODE/PROP/NOP/END, big-endian, each item padded to 4 bytes. */
#include "fdt.h"
#include "string.h"

enum { FDT_BEGIN_NODE = 1, FDT_END_NODE = 2, FDT_PROP = 3, FDT_NOP = 4, FDT_END = 9 };

int fdt_check(const void *fdt)
{
	return fdt && be32(fdt) == FDT_MAGIC ? 0 : -1;
}

uint32_t fdt_totalsize(const void *fdt)
{
	return be32((const uint8_t *)fdt + 4);
}

/* The path component [comp, comp+len) names `node` if equal to it or to the part before '@'. */
static int component_matches(const char *node, const char *comp, size_t len)
{
	if (strncmp(node, comp, len) != 0)
		return 0;
	return node[len] == '\0' || node[len] == '@';
}

const void *fdt_prop(const void *fdt, const char *path, const char *prop, uint32_t *len)
{
	if (fdt_check(fdt))
		return NULL;
	const uint8_t *base = fdt;
	const uint8_t *p = base + be32(base + 8);
	const char *strings = (const char *)base + be32(base + 12);
	const char *comps[8];
	size_t comp_len[8];
	int ncomps = 0;
	for (const char *s = path; *s;) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		if (ncomps == 8)
			return NULL;
		comps[ncomps] = s;
		while (*s && *s != '/')
			s++;
		comp_len[ncomps] = (size_t)(s - comps[ncomps]);
		ncomps++;
	}
	/* depth counts open nodes; matched is how many leading open nodes lie on `path`. */
	int depth = 0, matched = 0;
	for (;;) {
		uint32_t token = be32(p);
		p += 4;
		switch (token) {
		case FDT_BEGIN_NODE: {
			const char *name = (const char *)p;
			size_t n = strlen(name);
			if (depth == 0)
				matched = 1; /* the root node, named "" */
			else if (matched == depth && depth - 1 < ncomps &&
				 component_matches(name, comps[depth - 1], comp_len[depth - 1]))
				matched = depth + 1;
			depth++;
			p += (n + 1 + 3) & ~3u;
			break;
		}
		case FDT_END_NODE:
			if (matched == depth)
				matched--;
			depth--;
			break;
		case FDT_PROP: {
			uint32_t plen = be32(p), nameoff = be32(p + 4);
			const uint8_t *value = p + 8;
			if (matched == depth && depth == ncomps + 1 && strcmp(strings + nameoff, prop) == 0) {
				if (len)
					*len = plen;
				return value;
			}
			p = value + ((plen + 3) & ~3u);
			break;
		}
		case FDT_NOP:
			break;
		default: /* FDT_END or garbage */
			return NULL;
		}
	}
}

uint64_t fdt_cells(const void *p, uint32_t cells)
{
	const uint8_t *b = p;
	return cells == 2 ? ((uint64_t)be32(b) << 32) | be32(b + 4) : be32(b);
}

int fdt_read_machine(const void *fdt, struct fdt_machine *m)
{
	uint32_t len, acells = 2, scells = 1;
	m->model = "unknown machine";
	m->ram_base = 0x80000000u;
	m->ram_size = 128u << 20;
	m->ram_mib = 128;
	m->timebase = 10000000u;
	m->size = 0;
	if (fdt_check(fdt))
		return -1;
	m->size = fdt_totalsize(fdt);
	const char *model = fdt_prop(fdt, "/", "model", &len);
	if (model)
		m->model = model;
	/* §2.3.5: without #address-cells/#size-cells a reader assumes 2 and 1. */
	const void *p = fdt_prop(fdt, "/", "#address-cells", &len);
	if (p)
		acells = be32(p);
	p = fdt_prop(fdt, "/", "#size-cells", &len);
	if (p)
		scells = be32(p);
	p = fdt_prop(fdt, "/memory", "reg", &len);
	if (p && len >= 4 * (acells + scells)) {
		m->ram_base = (uint32_t)fdt_cells(p, acells);
		uint64_t size = fdt_cells((const uint8_t *)p + 4 * acells, scells);
		m->ram_size = size > 0xffffffffu ? 0xffffffffu : (uint32_t)size;
		m->ram_mib = (uint32_t)(size >> 20);
	}
	/* 2 GiB at 0x8000_0000 ends at 2^32, which 32-bit address arithmetic cannot hold:
	 * give up the last 4 MiB so "base + size" always makes sense. */
	if ((uint64_t)m->ram_base + m->ram_size > 0xffc00000u)
		m->ram_size = 0xffc00000u - m->ram_base;
	p = fdt_prop(fdt, "/cpus", "timebase-frequency", &len);
	if (p && be32(p))
		m->timebase = be32(p);
	return 0;
}
