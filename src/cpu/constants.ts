// Numbers from the RISC-V privileged spec (v1.12) that the interpreter, the CSR file,
// the MMU and the trap logic share: privilege levels, exception and interrupt causes,
// mstatus fields and CSR addresses.

export const PRV_U = 0;
export const PRV_S = 1;
export const PRV_M = 3;

// Privileged spec 3.1.15, table 3.6: exception codes (mcause with interrupt bit clear).
export const EXC_INST_MISALIGNED = 0;
export const EXC_INST_ACCESS = 1;
export const EXC_ILLEGAL_INST = 2;
export const EXC_BREAKPOINT = 3;
export const EXC_LOAD_MISALIGNED = 4;
export const EXC_LOAD_ACCESS = 5;
export const EXC_STORE_MISALIGNED = 6;
export const EXC_STORE_ACCESS = 7;
export const EXC_ECALL_U = 8;
export const EXC_ECALL_S = 9;
export const EXC_ECALL_M = 11;
export const EXC_INST_PAGE_FAULT = 12;
export const EXC_LOAD_PAGE_FAULT = 13;
export const EXC_STORE_PAGE_FAULT = 15;

// Interrupt numbers (bit positions in mip/mie).
export const IRQ_SSI = 1;
export const IRQ_MSI = 3;
export const IRQ_STI = 5;
export const IRQ_MTI = 7;
export const IRQ_SEI = 9;
export const IRQ_MEI = 11;

export const MIP_SSIP = 1 << IRQ_SSI;
export const MIP_MSIP = 1 << IRQ_MSI;
export const MIP_STIP = 1 << IRQ_STI;
export const MIP_MTIP = 1 << IRQ_MTI;
export const MIP_SEIP = 1 << IRQ_SEI;
export const MIP_MEIP = 1 << IRQ_MEI;

// mstatus fields (privileged spec 3.1.6).
export const MSTATUS_SIE = 1 << 1;
export const MSTATUS_MIE = 1 << 3;
export const MSTATUS_SPIE = 1 << 5;
export const MSTATUS_MPIE = 1 << 7;
export const MSTATUS_SPP = 1 << 8;
export const MSTATUS_MPP_SHIFT = 11;
export const MSTATUS_MPP = 3 << MSTATUS_MPP_SHIFT;
export const MSTATUS_MPRV = 1 << 17;
export const MSTATUS_SUM = 1 << 18;
export const MSTATUS_MXR = 1 << 19;
export const MSTATUS_TVM = 1 << 20;
export const MSTATUS_TW = 1 << 21;
export const MSTATUS_TSR = 1 << 22;

/** misa for RV32IMA with S and U modes: MXL=1, extensions A, I, M, S, U. */
export const MISA_RV32IMASU = 0x40141101;
/** misa.C (bit 2): the compressed extension, on by default as on QEMU 7.2's rv32. */
export const MISA_C = 1 << 2;

// Memory access kinds, used by the MMU to pick the fault cause.
export const ACCESS_FETCH = 0;
export const ACCESS_LOAD = 1;
export const ACCESS_STORE = 2;

/** Entries per soft TLB (direct-mapped by VPN). */
export const TLB_SIZE = 256;

/** Cpu.counterWrite bits: a CSR instruction wrote minstret[h] / mcycle[h]. */
export const COUNTER_WRITE_INSTRET = 1;
export const COUNTER_WRITE_CYCLE = 2;
