/* CSR access by name (the assembler knows the Privileged spec's names). */
#ifndef MINIVM_CSR_H
#define MINIVM_CSR_H
#include "types.h"

#define csr_read(csr) ({ uint32_t v_; __asm__ volatile("csrr %0, " #csr : "=r"(v_)); v_; })
#define csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" ::"rK"((uint32_t)(v)) : "memory")
#define csr_set(csr, v) __asm__ volatile("csrs " #csr ", %0" ::"rK"((uint32_t)(v)) : "memory")
#define csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" ::"rK"((uint32_t)(v)) : "memory")

/* mstatus / sstatus bits (Privileged spec §3.1.6) */
#define MSTATUS_SIE (1u << 1)
#define MSTATUS_MIE (1u << 3)
#define MSTATUS_SPIE (1u << 5)
#define MSTATUS_MPIE (1u << 7)
#define MSTATUS_SPP (1u << 8)
#define MSTATUS_MPP_SHIFT 11
#define MSTATUS_MPP (3u << MSTATUS_MPP_SHIFT)
#define MSTATUS_MPRV (1u << 17)
#define MSTATUS_SUM (1u << 18)

/* Interrupt numbers: bit positions in mip/mie and mcause codes (§3.1.9) */
#define IRQ_S_SOFT 1
#define IRQ_M_SOFT 3
#define IRQ_S_TIMER 5
#define IRQ_M_TIMER 7
#define IRQ_S_EXT 9
#define IRQ_M_EXT 11

/* Exception codes (§3.1.15) */
#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS 1
#define CAUSE_ILLEGAL_INSTRUCTION 2
#define CAUSE_BREAKPOINT 3
#define CAUSE_LOAD_ACCESS 5
#define CAUSE_STORE_ACCESS 7
#define CAUSE_USER_ECALL 8
#define CAUSE_SUPERVISOR_ECALL 9
#define CAUSE_MACHINE_ECALL 11
#define CAUSE_FETCH_PAGE_FAULT 12
#define CAUSE_LOAD_PAGE_FAULT 13
#define CAUSE_STORE_PAGE_FAULT 15

#endif
