/* The M-mode trap frame and the handlers start.S calls. */
#ifndef MINIVM_SBI_TRAP_H
#define MINIVM_SBI_TRAP_H
#include "../lib/types.h"

struct trap_frame {
	uint32_t x[32]; /* x[2] is the interrupted sp; x[0] is unused */
};

void sbi_trap(struct trap_frame *f);
void sbi_trap_in_m(struct trap_frame *f);
void sbi_ecall(struct trap_frame *f);

/* Runs `csrw`-style code that may not exist on this hart: returns 0, or -1 if it trapped. */
extern volatile int m_probe;
#define M_PROBE_ARMED 1
#define M_PROBE_FAULTED 2

#endif
