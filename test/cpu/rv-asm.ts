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

/**
 * 16-bit encoders for the C extension (unprivileged spec chapter 16 formats), written from
 * the spec independently of src/cpu/rvc.ts so that the two can disagree. `r'` fields take
 * x8..x15.
 */
export const cenc = {
  /** CI: funct3 | imm[5] | rd | imm[4:0] | op */
  ci(f3: number, rd: number, imm6: number, op: number): number {
    return ((f3 << 13) | (((imm6 >> 5) & 1) << 12) | (rd << 7) | ((imm6 & 31) << 2) | op) & 0xffff;
  },
  /** CA: 100011 | rd' | funct2 | rs2' | 01 */
  ca(f2: number, rd: number, rs2: number): number {
    return ((0x23 << 10) | ((rd - 8) << 7) | (f2 << 5) | ((rs2 - 8) << 2) | 1) & 0xffff;
  },
  /** CB-format shifts and andi: 100 | imm[5] | funct2 | rd' | imm[4:0] | 01 */
  cbAlu(f2: number, rd: number, imm6: number): number {
    return ((4 << 13) | (((imm6 >> 5) & 1) << 12) | (f2 << 10) | ((rd - 8) << 7) | ((imm6 & 31) << 2) | 1) & 0xffff;
  },
  /** CR: funct4 | rd/rs1 | rs2 | 10 */
  cr(f4: number, rd: number, rs2: number): number {
    return ((f4 << 12) | (rd << 7) | (rs2 << 2) | 2) & 0xffff;
  },
  /** C.LW / C.SW: uimm[5:3] at 12:10, uimm[2] at 6, uimm[6] at 5. */
  clsw(store: boolean, rs1: number, r2: number, uimm: number): number {
    return (
      (((store ? 6 : 2) << 13) | (((uimm >> 3) & 7) << 10) | ((rs1 - 8) << 7) | (((uimm >> 2) & 1) << 6) |
        (((uimm >> 6) & 1) << 5) | ((r2 - 8) << 2)) & 0xffff
    );
  },
  /** C.LWSP: uimm[5] at 12, uimm[4:2] at 6:4, uimm[7:6] at 3:2. */
  lwsp(rd: number, uimm: number): number {
    return ((2 << 13) | (((uimm >> 5) & 1) << 12) | (rd << 7) | (((uimm >> 2) & 7) << 4) | (((uimm >> 6) & 3) << 2) | 2) & 0xffff;
  },
  /** C.SWSP: uimm[5:2] at 12:9, uimm[7:6] at 8:7. */
  swsp(rs2: number, uimm: number): number {
    return ((6 << 13) | (((uimm >> 2) & 15) << 9) | (((uimm >> 6) & 3) << 7) | (rs2 << 2) | 2) & 0xffff;
  },
  /** C.ADDI4SPN: nzuimm[5:4|9:6|2|3] in 12:5. */
  addi4spn(rd: number, nzuimm: number): number {
    return (
      ((((nzuimm >> 4) & 3) << 11) | (((nzuimm >> 6) & 15) << 7) | (((nzuimm >> 2) & 1) << 6) | (((nzuimm >> 3) & 1) << 5) |
        ((rd - 8) << 2)) & 0xffff
    );
  },
  /** C.ADDI16SP: nzimm[9] at 12, nzimm[4|6|8:7|5] at 6:2. */
  addi16sp(nzimm: number): number {
    return (
      ((3 << 13) | (((nzimm >> 9) & 1) << 12) | (2 << 7) | (((nzimm >> 4) & 1) << 6) | (((nzimm >> 6) & 1) << 5) |
        (((nzimm >> 7) & 3) << 3) | (((nzimm >> 5) & 1) << 2) | 1) & 0xffff
    );
  },
  /** C.J (funct3 101) / C.JAL (001): offset[11|4|9:8|10|6|7|3:1|5] in 12:2. */
  cj(f3: number, off: number): number {
    const b = (n: number) => (off >> n) & 1;
    return (
      ((f3 << 13) | (b(11) << 12) | (b(4) << 11) | (((off >> 8) & 3) << 9) | (b(10) << 8) | (b(6) << 7) | (b(7) << 6) |
        (((off >> 1) & 7) << 3) | (b(5) << 2) | 1) & 0xffff
    );
  },
  /** C.BEQZ (110) / C.BNEZ (111): offset[8|4:3] in 12:10, offset[7:6|2:1|5] in 6:2. */
  cb(f3: number, rs1: number, off: number): number {
    const b = (n: number) => (off >> n) & 1;
    return (
      ((f3 << 13) | (b(8) << 12) | (((off >> 3) & 3) << 10) | ((rs1 - 8) << 7) | (((off >> 6) & 3) << 5) |
        (((off >> 1) & 3) << 3) | (b(5) << 2) | 1) & 0xffff
    );
  },
};

export const C_NOP = 0x0001;
