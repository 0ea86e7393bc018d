/* CPU benchmark (bench/cpu.ts): a CoreMark-class workload written for minivm, with the four
 * kinds of kernel CoreMark runs: linked-list search, sort and reversal; a small integer
 * matrix multiply; a state machine scanning a text of numbers; and CRC-16 over the results.
 * Each iteration feeds the previous CRC in as the seed, so nothing can be hoisted out. It
 * prints the final CRC as 8 hex digits and exits through the finisher. Built -O2 by the
 * Makefile with the conformance tests' runtime (startup code, putc/puthex, 4 KiB stack). */
#include <stdint.h>

#ifndef ITERATIONS
#define ITERATIONS 4000
#endif
#define LIST_NODES 64
#define MAT_N 12
#define TEXT_LEN 256

void puthex(uint32_t v);
void putc(int c);

/* gcc may call these for struct copies and clears even in freestanding code. */
void *memset(void *d, int c, unsigned long n) {
	unsigned char *p = d;
	while (n--) *p++ = (unsigned char)c;
	return d;
}
void *memcpy(void *d, const void *s, unsigned long n) {
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--) *p++ = *q++;
	return d;
}

static uint16_t crc16_update(uint16_t crc, uint8_t data) {
	for (int i = 0; i < 8; i++) {
		uint16_t mix = (crc ^ data) & 1;
		crc >>= 1;
		if (mix) crc ^= 0xa001;
		data >>= 1;
	}
	return crc;
}

static uint16_t crc16_word(uint32_t v, uint16_t crc) {
	crc = crc16_update(crc, (uint8_t)v);
	crc = crc16_update(crc, (uint8_t)(v >> 8));
	crc = crc16_update(crc, (uint8_t)(v >> 16));
	return crc16_update(crc, (uint8_t)(v >> 24));
}

/* ---- linked list ---- */
struct node {
	struct node *next;
	int16_t key;
	int16_t value;
};

static struct node nodes[LIST_NODES];

static struct node *list_build(uint32_t seed) {
	struct node *head = 0;
	for (int i = 0; i < LIST_NODES; i++) {
		seed = seed * 1103515245u + 12345u;
		nodes[i].key = (int16_t)((seed >> 16) & 0x7fff);
		nodes[i].value = (int16_t)i;
		nodes[i].next = head;
		head = &nodes[i];
	}
	return head;
}

static struct node *list_reverse(struct node *l) {
	struct node *prev = 0;
	while (l) {
		struct node *n = l->next;
		l->next = prev;
		prev = l;
		l = n;
	}
	return prev;
}

static struct node *list_find(struct node *l, int16_t key) {
	while (l && l->key != key) l = l->next;
	return l;
}

/* Bottom-up merge sort on keys (no recursion: the stack is small). */
static struct node *list_sort(struct node *list) {
	for (int width = 1;; width *= 2) {
		struct node *p = list, *tail = 0;
		list = 0;
		int merges = 0;
		while (p) {
			merges++;
			struct node *q = p;
			int psize = 0;
			for (int i = 0; i < width && q; i++) {
				psize++;
				q = q->next;
			}
			int qsize = width;
			while (psize > 0 || (qsize > 0 && q)) {
				struct node *e;
				if (psize == 0) {
					e = q; q = q->next; qsize--;
				} else if (qsize == 0 || !q || p->key <= q->key) {
					e = p; p = p->next; psize--;
				} else {
					e = q; q = q->next; qsize--;
				}
				if (tail) tail->next = e;
				else list = e;
				tail = e;
			}
			p = q;
		}
		tail->next = 0;
		if (merges <= 1) return list;
	}
}

static uint16_t bench_list(uint16_t seed) {
	struct node *l = list_build(seed);
	uint16_t crc = seed;
	for (int i = 0; i < 8; i++) {
		struct node *f = list_find(l, nodes[(seed + i * 7) % LIST_NODES].key);
		crc = crc16_word(f ? (uint32_t)f->value : 0xffffu, crc);
	}
	l = list_sort(l);
	for (struct node *p = l; p; p = p->next) crc = crc16_update(crc, (uint8_t)p->key);
	l = list_reverse(l);
	return crc16_word((uint32_t)l->key << 16 | (uint16_t)l->value, crc);
}

/* ---- matrix ---- */
static int16_t ma[MAT_N][MAT_N], mb[MAT_N][MAT_N];
static int32_t mc[MAT_N][MAT_N];

static uint16_t bench_matrix(uint16_t seed) {
	for (int i = 0; i < MAT_N; i++)
		for (int j = 0; j < MAT_N; j++) {
			ma[i][j] = (int16_t)((seed + i * 13 + j * 7) & 0xff) - 128;
			mb[i][j] = (int16_t)((seed ^ (i * 31 + j)) & 0xff) - 100;
		}
	for (int i = 0; i < MAT_N; i++)
		for (int j = 0; j < MAT_N; j++) {
			int32_t s = 0;
			for (int k = 0; k < MAT_N; k++) s += (int32_t)ma[i][k] * mb[k][j];
			mc[i][j] = s;
		}
	uint16_t crc = seed;
	for (int i = 0; i < MAT_N; i++) {
		int32_t row = 0;
		for (int j = 0; j < MAT_N; j++) row += (mc[i][j] >> 2) ^ (mc[j][i] & 0xff);
		crc = crc16_word((uint32_t)row, crc);
	}
	return crc;
}

/* ---- state machine: classify the words of a text (integers, decimals, hex, invalid) ---- */
enum state { START, INT, SIGN, DOT, FRAC, HEX0, HEX, INVALID };

static char text[TEXT_LEN];

static void text_build(uint16_t seed) {
	static const char pieces[][8] = { "123", "-45", "6.75", "0x1f", "9z", "+0", "3.", "0xg", ".5", "77" };
	int p = 0;
	uint32_t s = seed;
	while (p < TEXT_LEN - 10) {
		s = s * 1664525u + 1013904223u;
		const char *w = pieces[(s >> 24) % 10];
		while (*w) text[p++] = *w++;
		text[p++] = ',';
	}
	text[p] = 0;
}

static uint16_t bench_state(uint16_t seed) {
	uint32_t counts[8] = { 0 };
	enum state st = START;
	text_build(seed);
	for (const char *c = text;; c++) {
		char ch = *c;
		if (ch == ',' || ch == 0) {
			counts[st]++;
			st = START;
			if (ch == 0) break;
			continue;
		}
		switch (st) {
		case START:
			if (ch >= '1' && ch <= '9') st = INT;
			else if (ch == '0') st = HEX0;
			else if (ch == '+' || ch == '-') st = SIGN;
			else if (ch == '.') st = DOT;
			else st = INVALID;
			break;
		case SIGN:
			st = (ch >= '0' && ch <= '9') ? INT : INVALID;
			break;
		case HEX0:
			if (ch == 'x') st = HEX;
			else if (ch >= '0' && ch <= '9') st = INT;
			else if (ch == '.') st = DOT;
			else st = INVALID;
			break;
		case INT:
			if (ch == '.') st = DOT;
			else if (ch < '0' || ch > '9') st = INVALID;
			break;
		case DOT:
		case FRAC:
			st = (ch >= '0' && ch <= '9') ? FRAC : INVALID;
			break;
		case HEX:
			if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) st = INVALID;
			break;
		default:
			break;
		}
	}
	uint16_t crc = seed;
	for (int i = 0; i < 8; i++) crc = crc16_word(counts[i], crc);
	return crc;
}

int main(void) {
	uint16_t crc = 0x1234;
	for (int i = 0; i < ITERATIONS; i++) {
		crc = bench_list(crc);
		crc = bench_matrix(crc);
		crc = bench_state(crc);
	}
	puthex(crc);
	putc('\n');
	return 0;
}
