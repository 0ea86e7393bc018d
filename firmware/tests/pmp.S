/* Physical memory protection (privileged spec 3.7) as QEMU 7.2 enforces it: NA4, TOR and
 * NAPOT entries, first match wins, an access partly inside an entry fails, M is exempt
 * unless the entry is locked, S gets access faults, a PTE read PMP forbids is an access
 * fault, and a locked entry ignores writes. */
#include "common.h"
#define R 1
#define W 2
#define X 4
#define TOR (1 << 3)
#define NA4 (2 << 3)
#define NAPOT (3 << 3)
#define L 0x80

.macro TRY_LOAD reg_addr
  li s5, 0x5a5a5a5a
  lw s5, 0(\reg_addr)
  PHEX s5
.endm

  .text
  .globl main
main:
  addi sp, sp, -16
  sw ra, 0(sp)
  /* entry 0: NA4 over word0, read-only
     entry 1: TOR up to the end of page A (from word0's neighbour entry address), RW
     entry 2: NAPOT over page B (4 KiB), execute only
     entry 3: NAPOT everything, RWX */
  la t0, word0
  srli t0, t0, 2
  csrw pmpaddr0, t0
  la t0, pageA_end
  srli t0, t0, 2
  csrw pmpaddr1, t0
  la t0, pageB
  srli t0, t0, 2
  ori t0, t0, (4096 >> 3) - 1
  csrw pmpaddr2, t0
  li t0, -1
  csrw pmpaddr3, t0
  li t0, ((NAPOT | R | W | X) << 24) | ((NAPOT | X) << 16) | ((TOR | R | W) << 8) | (NA4 | R)
  csrw pmpcfg0, t0
  csrr s5, pmpcfg0
  PHEX s5
  NL
  /* M is exempt from unlocked entries */
  la s6, word0
  li t0, 0x11
  sw t0, 0(s6)
  TRY_LOAD s6
  NL
  /* S mode, bare */
  la t0, s_code
  csrw mepc, t0
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x0800
  csrs mstatus, t0
  mret
s_code:
  la s6, word0
  TRY_LOAD s6
  li t0, 0x22
  sw t0, 0(s6)
  addi s7, s6, 2
  TRY_LOAD s7           /* straddles word0's NA4 entry: partly inside */
  addi s7, s6, 4
  TRY_LOAD s7
  li t0, 0x33
  sw t0, 0(s7)
  TRY_LOAD s7
  la s7, pageB
  TRY_LOAD s7           /* execute-only */
  sw zero, 0(s7)
  jalr ra, 0(s7)        /* pageB starts with ret */
  PUTS "x ok "
  la s7, pageC
  TRY_LOAD s7           /* the catch-all */
  NL
  ecall
  NL
  /* A page table in pageB, used through MPRV as S: the walk's PTE read is refused by
     PMP, which is an access fault, not a page fault. */
  la t0, pageB
  srli t0, t0, 12
  li t1, 0x80000000
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li t0, (1 << 17) | 0x0800
  csrs mstatus, t0
  li s7, 0x12345678
  li s5, 0x5a5a5a5a
  lw s5, 0(s7)
  li t0, (1 << 17) | 0x1800
  csrc mstatus, t0
  PHEX s5
  NL
  /* lock entry 0 (word0 read-only, M included) */
  csrw satp, zero
  li t0, L
  csrs pmpcfg0, t0
  la s6, word0
  TRY_LOAD s6
  li t0, 0x44
  sw t0, 0(s6)
  TRY_LOAD s6
  /* a locked entry ignores writes to its address and configuration */
  csrw pmpaddr0, zero
  csrr s5, pmpaddr0
  la t0, word0
  srli t0, t0, 2
  sub s5, s5, t0
  PHEX s5
  csrw pmpcfg0, zero
  csrr s5, pmpcfg0
  PHEX s5
  NL
  PUTS "pmp done\n"
  lw ra, 0(sp)
  addi sp, sp, 16
  ret

  .data
  .align 12
pageA:
word0: .word 0
word1: .word 0
  .align 12
pageA_end:
pageB:
  ret
  .align 12
pageC: .word 0x77
