// The C extension (unprivileged spec chapter 16, "Zca" for the integer subset): each 16-bit
// instruction is shorthand for one 32-bit RV32I instruction, so the interpreter (and the
// block compiler) decode it by expanding it first and executing the expansion with a 2-byte
// length. The floating-point forms (C.FLW, C.FLD, ...) are illegal here: the hart has no F/D.
// Reserved encodings follow QEMU 7.2 (target/riscv/insn16.decode): a zero immediate in
// C.ADDI4SPN, C.ADDI16SP and C.LUI, rd = 0 in C.LWSP, rs1 = 0 in C.JR, and shift amounts of
// 32 or more on RV32 are illegal; the HINT forms (rd = 0, shamt = 0) are legal no-ops.

/** The 3-bit register fields of CIW/CL/CS/CA/CB formats name x8..x15. */
function creg(bits: number): number {
  return 8 + (bits & 7);
}

function bit(half: number, n: number): number {
  return (half >>> n) & 1;
}

// 32-bit encoders (unprivileged spec chapter 2, figure 2.3).
function iType(op: number, f3: number, rd: number, rs1: number, imm: number): number {
  return (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
}
function rType(f7: number, rs2: number, rs1: number, f3: number, rd: number): number {
  return ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x33) >>> 0;
}
function sType(f3: number, rs1: number, rs2: number, imm: number): number {
  return ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | 0x23) >>> 0;
}
function bType(f3: number, rs1: number, rs2: number, imm: number): number {
  return (
    ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
      (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0
  );
}
function jType(rd: number, imm: number): number {
  return (
    ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (imm & 0xff000) |
      (rd << 7) | 0x6f) >>> 0
  );
}

const OP_IMM = 0x13;
const LOAD = 0x03;
const JALR = 0x67;
const EBREAK = 0x00100073;

/** CI-format signed 6-bit immediate: imm[5] = bit 12, imm[4:0] = bits 6:2. */
function ciImm(h: number): number {
  return ((bit(h, 12) << 31) >> 26) | ((h >>> 2) & 0x1f);
}

/** CJ-format jump offset (C.J, C.JAL): imm[11|4|9:8|10|6|7|3:1|5] in bits 12:2. */
function cjImm(h: number): number {
  const imm =
    (bit(h, 12) << 11) | (bit(h, 11) << 4) | (((h >>> 9) & 3) << 8) | (bit(h, 8) << 10) | (bit(h, 7) << 6) |
    (bit(h, 6) << 7) | (((h >>> 3) & 7) << 1) | (bit(h, 2) << 5);
  return (imm << 20) >> 20;
}

/** CB-format branch offset (C.BEQZ, C.BNEZ): imm[8|4:3] in 12:10, imm[7:6|2:1|5] in 6:2. */
function cbImm(h: number): number {
  const imm =
    (bit(h, 12) << 8) | (((h >>> 10) & 3) << 3) | (((h >>> 5) & 3) << 6) | (((h >>> 3) & 3) << 1) | (bit(h, 2) << 5);
  return (imm << 23) >> 23;
}

/**
 * The 32-bit instruction that a 16-bit RVC instruction stands for, or 0 when the encoding is
 * illegal on this RV32IMAC hart (0 is itself illegal, so a caller can raise on it directly
 * with the 16-bit value as mtval, as QEMU does).
 */
export function expandCompressed(half: number): number {
  const h = half & 0xffff;
  const f3 = h >>> 13;
  const rdFull = (h >>> 7) & 31;
  const rs2Full = (h >>> 2) & 31;
  const rdP = creg(h >>> 2);
  const rs1P = creg(h >>> 7);
  switch (h & 3) {
    case 0:
      switch (f3) {
        case 0: {
          // C.ADDI4SPN: addi rd', x2, nzuimm[9:2]
          const imm = (((h >>> 7) & 0xf) << 6) | (((h >>> 11) & 3) << 4) | (bit(h, 5) << 3) | (bit(h, 6) << 2);
          return imm === 0 ? 0 : iType(OP_IMM, 0, rdP, 2, imm);
        }
        case 2: {
          // C.LW: lw rd', uimm(rs1')
          const imm = (((h >>> 10) & 7) << 3) | (bit(h, 6) << 2) | (bit(h, 5) << 6);
          return iType(LOAD, 2, rdP, rs1P, imm);
        }
        case 6: {
          // C.SW: sw rs2', uimm(rs1')
          const imm = (((h >>> 10) & 7) << 3) | (bit(h, 6) << 2) | (bit(h, 5) << 6);
          return sType(2, rs1P, rdP, imm);
        }
        default:
          // C.FLD, C.FLW, C.FSD, C.FSW need F/D; 100 is reserved.
          return 0;
      }
    case 1:
      switch (f3) {
        case 0: // C.ADDI (C.NOP when rd = 0): addi rd, rd, imm
          return iType(OP_IMM, 0, rdFull, rdFull, ciImm(h));
        case 1: // C.JAL (RV32 only): jal x1, offset
          return jType(1, cjImm(h));
        case 2: // C.LI: addi rd, x0, imm
          return iType(OP_IMM, 0, rdFull, 0, ciImm(h));
        case 3: {
          if (bit(h, 12) === 0 && ((h >>> 2) & 0x1f) === 0) return 0; // nzimm = 0 is reserved
          if (rdFull === 2) {
            // C.ADDI16SP: addi x2, x2, nzimm[9:4]
            const imm =
              (bit(h, 12) << 9) | (bit(h, 6) << 4) | (bit(h, 5) << 6) | (((h >>> 3) & 3) << 7) | (bit(h, 2) << 5);
            return iType(OP_IMM, 0, 2, 2, (imm << 22) >> 22);
          }
          // C.LUI: lui rd, nzimm[17:12]
          return ((((ciImm(h) << 12) & 0xfffff000) | (rdFull << 7) | 0x37) >>> 0);
        }
        case 4: {
          const rd = rs1P;
          switch ((h >>> 10) & 3) {
            case 0: // C.SRLI
              return bit(h, 12) ? 0 : iType(OP_IMM, 5, rd, rd, rs2Full);
            case 1: // C.SRAI
              return bit(h, 12) ? 0 : iType(OP_IMM, 5, rd, rd, 0x400 | rs2Full);
            case 2: // C.ANDI
              return iType(OP_IMM, 7, rd, rd, ciImm(h));
            default: {
              if (bit(h, 12)) return 0; // C.SUBW / C.ADDW are RV64
              const rs2 = rdP;
              switch ((h >>> 5) & 3) {
                case 0: return rType(0x20, rs2, rd, 0, rd); // C.SUB
                case 1: return rType(0, rs2, rd, 4, rd); // C.XOR
                case 2: return rType(0, rs2, rd, 6, rd); // C.OR
                default: return rType(0, rs2, rd, 7, rd); // C.AND
              }
            }
          }
        }
        case 5: // C.J: jal x0, offset
          return jType(0, cjImm(h));
        case 6: // C.BEQZ: beq rs1', x0, offset
          return bType(0, rs1P, 0, cbImm(h));
        default: // C.BNEZ
          return bType(1, rs1P, 0, cbImm(h));
      }
    case 2:
      switch (f3) {
        case 0: // C.SLLI
          return bit(h, 12) ? 0 : iType(OP_IMM, 1, rdFull, rdFull, rs2Full);
        case 2: {
          // C.LWSP: lw rd, uimm(x2); rd = 0 is reserved
          if (rdFull === 0) return 0;
          const imm = (bit(h, 12) << 5) | (((h >>> 4) & 7) << 2) | (((h >>> 2) & 3) << 6);
          return iType(LOAD, 2, rdFull, 2, imm);
        }
        case 4:
          if (bit(h, 12) === 0) {
            if (rs2Full === 0) return rdFull === 0 ? 0 : iType(JALR, 0, 0, rdFull, 0); // C.JR
            return iType(OP_IMM, 0, rdFull, rs2Full, 0); // C.MV: addi rd, rs2, 0 (QEMU's expansion)
          }
          if (rs2Full === 0) return rdFull === 0 ? EBREAK : iType(JALR, 0, 1, rdFull, 0); // C.EBREAK, C.JALR
          return rType(0, rs2Full, rdFull, 0, rdFull); // C.ADD
        case 6: {
          // C.SWSP: sw rs2, uimm(x2)
          const imm = (((h >>> 9) & 0xf) << 2) | (((h >>> 7) & 3) << 6);
          return sType(2, 2, rs2Full, imm);
        }
        default:
          // C.FLDSP, C.FLWSP, C.FSDSP, C.FSWSP need F/D.
          return 0;
      }
    default:
      // Not a 16-bit instruction.
      return 0;
  }
}

/**
 * expandCompressed() as a table lookup: every 16-bit parcel's expansion, computed at its first
 * use (an entry of 1, never a valid expansion since its low bits are not 11, means "illegal").
 * The interpreter expands each compressed instruction every time it runs it, and the switch
 * in expandCompressed made compressed code run at three quarters of the speed of 32-bit code.
 */
const expansions = new Int32Array(1 << 16);
export function expandCompressedCached(half: number): number {
  const h = half & 0xffff;
  let e = expansions[h];
  if (e === 0) {
    e = expandCompressed(h) | 0;
    expansions[h] = e === 0 ? 1 : e;
    return e;
  }
  return e === 1 ? 0 : e;
}
