/* Helpers shared by the conformance tests: UART output of strings and hex words, the
 * finisher exit, and an M-mode trap handler that reports each trap and skips the
 * faulting instruction (or resumes at trap_redirect when a test sets it). */
#define UART0 0x10000000
#define FINISHER 0x100000

/* Print a literal string. Clobbers a0, t0, t1, ra. */
.macro PUTS str
  .pushsection .rodata
  99: .asciz "\str"
  .popsection
  la a0, 99b
  call puts
.endm

/* Print a register as 8 hex digits and a space. Clobbers a0, t0-t2, ra. */
.macro PHEX reg
  mv a0, \reg
  call puthex
.endm

.macro NL
  li a0, '\n'
  call putc
.endm

/* Exit through the finisher: 0 passes, anything else fails with that status. */
.macro EXIT code
  li a0, \code
  j exit
.endm

/* Fail with status `code` unless reg == value. Clobbers t3. */
.macro CHECK reg, value, code
  li t3, \value
  beq \reg, t3, 98f
  li a0, \code
  j exit
98:
.endm
