// Instruction encoders for RV32IMA + Zicsr (unprivileged spec chapter 2.3 formats), so the
// random-program generator can emit machine code without a cross toolchain.

export const enc = {
  r(op: number, f3: number, f7: number, rd: number, rs1: number, rs2: number): number {
    return ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
  },
  i(op: number, f3: number, rd: number, rs1: number, imm: number): number {
    return (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
  },
  s(op: number, f3: number, rs1: number, rs2: number, imm: number): number {
    return ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | op) >>> 0;
  },
  b(f3: number, rs1: number, rs2: number, imm: number): number {
    return (
      ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
        (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0
    );
  },
  u(op: number, rd: number, imm20: number): number {
    return (((imm20 & 0xfffff) << 12) | (rd << 7) | op) >>> 0;
  },
  j(rd: number, imm: number): number {
    return (
      ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) |
        (((imm >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0
    );
  },
};

export const lui = (rd: number, imm20: number) => enc.u(0x37, rd, imm20);
export const auipc = (rd: number, imm20: number) => enc.u(0x17, rd, imm20);
export const addi = (rd: number, rs1: number, imm: number) => enc.i(0x13, 0, rd, rs1, imm);
export const jalr = (rd: number, rs1: number, imm: number) => enc.i(0x67, 0, rd, rs1, imm);
export const sw = (rs1: number, rs2: number, imm: number) => enc.s(0x23, 2, rs1, rs2, imm);
export const csrrw = (rd: number, csr: number, rs1: number) => enc.i(0x73, 1, rd, rs1, csr);
export const csrrs = (rd: number, csr: number, rs1: number) => enc.i(0x73, 2, rd, rs1, csr);
export const NOP = addi(0, 0, 0);

/** Split a pc-relative distance into auipc's upper 20 bits and a signed 12-bit low part. */
export function hiLo(delta: number): [number, number] {
  const hi = ((delta + 0x800) >> 12) & 0xfffff;
  const lo = (delta - (hi << 12)) | 0;
  return [hi, ((lo << 20) >> 20)];
}

/** The two instructions that load a 32-bit constant into rd. */
export function li(rd: number, value: number): number[] {
  const v = value | 0;
  const hi = ((v + 0x800) >>> 12) & 0xfffff;
  const lo = (v << 20) >> 20;
  return [lui(rd, hi), addi(rd, rd, lo)];
}
