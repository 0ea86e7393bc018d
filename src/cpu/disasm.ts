// An RV32IMA + Zicsr disassembler for traces and HMP `x/i`, printing what QEMU 7.2's
// disas/riscv.c prints: ABI register names, decimal immediates (lui/auipc show the shifted
// value), branch and jump offsets with the target in a comment, and its pseudo-instruction
// lifts (mv, nop, j, ret, beqz, not, neg, seqz, snez, ...).

import { ABI_NAMES } from "./registers.js";
import { expandCompressed } from "./rvc.js";

export interface Disassembly {
  /** Bytes the instruction occupies (2 for a compressed encoding, reported as illegal). */
  length: 2 | 4;
  mnemonic: string;
  operands: string;
  /** QEMU's trailing comment, e.g. "0x80000010" for a branch target. */
  comment?: string;
}

const CSR_NAMES: Record<number, string> = {
  0x001: "fflags", 0x002: "frm", 0x003: "fcsr",
  0x100: "sstatus", 0x104: "sie", 0x105: "stvec", 0x106: "scounteren",
  0x140: "sscratch", 0x141: "sepc", 0x142: "scause", 0x143: "stval", 0x144: "sip", 0x180: "satp",
  0x300: "mstatus", 0x301: "misa", 0x302: "medeleg", 0x303: "mideleg", 0x304: "mie", 0x305: "mtvec",
  0x306: "mcounteren", 0x320: "mcountinhibit",
  0x340: "mscratch", 0x341: "mepc", 0x342: "mcause", 0x343: "mtval", 0x344: "mip",
  0x7a0: "tselect", 0x7a1: "tdata1", 0x7a2: "tdata2", 0x7a3: "tdata3",
  0xb00: "mcycle", 0xb02: "minstret", 0xb80: "mcycleh", 0xb82: "minstreth",
  0xc00: "cycle", 0xc01: "time", 0xc02: "instret", 0xc80: "cycleh", 0xc81: "timeh", 0xc82: "instreth",
  0xf11: "mvendorid", 0xf12: "marchid", 0xf13: "mimpid", 0xf14: "mhartid",
};
for (let i = 0; i < 4; i++) CSR_NAMES[0x3a0 + i] = `pmpcfg${i}`;
for (let i = 0; i < 16; i++) CSR_NAMES[0x3b0 + i] = `pmpaddr${i}`;

function csrName(csr: number): string {
  return CSR_NAMES[csr] ?? `0x${csr.toString(16).padStart(3, "0")}`;
}

const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;
const R = (i: number) => ABI_NAMES[i];

function ins(mnemonic: string, operands = "", comment?: string): Disassembly {
  return { length: 4, mnemonic, operands, comment };
}

const ILLEGAL: Disassembly = { length: 4, mnemonic: "illegal", operands: "" };

export function disassemble(inst: number, pc: number): Disassembly {
  inst >>>= 0;
  if ((inst & 3) !== 3) {
    // QEMU prints a compressed instruction as the 32-bit one it expands to, lifted the same way.
    const expanded = expandCompressed(inst & 0xffff);
    if (expanded === 0) return { length: 2, mnemonic: "illegal", operands: "" };
    return { ...disassemble(expanded, pc), length: 2 };
  }
  const op = inst & 0x7f;
  const rd = (inst >>> 7) & 31;
  const rs1 = (inst >>> 15) & 31;
  const rs2 = (inst >>> 20) & 31;
  const f3 = (inst >>> 12) & 7;
  const f7 = inst >>> 25;
  const immI = (inst | 0) >> 20;
  switch (op) {
    case 0x37:
      return ins("lui", `${R(rd)},${inst & 0xfffff000}`);
    case 0x17: {
      const v = inst & 0xfffff000;
      return ins("auipc", `${R(rd)},${v | 0}`, hex(pc + v));
    }
    case 0x6f: {
      const imm = ((inst | 0) >> 31 << 20) | (inst & 0xff000) | (((inst >>> 20) & 1) << 11) | (((inst >>> 21) & 0x3ff) << 1);
      if (rd === 0) return ins("j", `${imm}`, hex(pc + imm));
      return ins("jal", `${R(rd)},${imm}`, hex(pc + imm));
    }
    case 0x67:
      if (f3 !== 0) return ILLEGAL;
      if (rd === 0 && rs1 === 1 && immI === 0) return ins("ret");
      if (rd === 0 && immI === 0) return ins("jr", R(rs1));
      return ins("jalr", `${R(rd)},${R(rs1)},${immI}`);
    case 0x63: {
      const imm = ((inst | 0) >> 31 << 12) | (((inst >>> 7) & 1) << 11) | (((inst >>> 25) & 0x3f) << 5) | (((inst >>> 8) & 0xf) << 1);
      const names = ["beq", "bne", "", "", "blt", "bge", "bltu", "bgeu"];
      if (!names[f3]) return ILLEGAL;
      const target = hex(pc + imm);
      if (rs2 === 0 && f3 <= 1) return ins(`${names[f3]}z`, `${R(rs1)},${imm}`, target);
      if (rs2 === 0 && f3 === 4) return ins("bltz", `${R(rs1)},${imm}`, target);
      if (rs2 === 0 && f3 === 5) return ins("bgez", `${R(rs1)},${imm}`, target);
      if (rs1 === 0 && f3 === 4) return ins("bgtz", `${R(rs2)},${imm}`, target);
      if (rs1 === 0 && f3 === 5) return ins("blez", `${R(rs2)},${imm}`, target);
      // QEMU always lifts the ordered compares to their swapped forms: blt a0,t4 prints as
      // bgt t4,a0 (likewise ble, bgtu, bleu).
      if (f3 >= 4) {
        const swapped = ["bgt", "ble", "bgtu", "bleu"][f3 - 4];
        return ins(swapped, `${R(rs2)},${R(rs1)},${imm}`, target);
      }
      return ins(names[f3], `${R(rs1)},${R(rs2)},${imm}`, target);
    }
    case 0x03: {
      const names = ["lb", "lh", "lw", "", "lbu", "lhu", "", ""];
      return names[f3] ? ins(names[f3], `${R(rd)},${immI}(${R(rs1)})`) : ILLEGAL;
    }
    case 0x23: {
      const imm = ((inst | 0) >> 25 << 5) | ((inst >>> 7) & 31);
      const names = ["sb", "sh", "sw"];
      return f3 < 3 ? ins(names[f3], `${R(rs2)},${imm}(${R(rs1)})`) : ILLEGAL;
    }
    case 0x13: {
      if (f3 === 0) {
        if (rd === 0 && rs1 === 0 && immI === 0) return ins("nop");
        if (immI === 0) return ins("mv", `${R(rd)},${R(rs1)}`);
        return ins("addi", `${R(rd)},${R(rs1)},${immI}`);
      }
      if (f3 === 3 && immI === 1) return ins("seqz", `${R(rd)},${R(rs1)}`);
      if (f3 === 4 && immI === -1) return ins("not", `${R(rd)},${R(rs1)}`);
      if (f3 === 1) return f7 === 0 ? ins("slli", `${R(rd)},${R(rs1)},${rs2}`) : ILLEGAL;
      if (f3 === 5) {
        if (f7 === 0) return ins("srli", `${R(rd)},${R(rs1)},${rs2}`);
        if (f7 === 0x20) return ins("srai", `${R(rd)},${R(rs1)},${rs2}`);
        return ILLEGAL;
      }
      const names = ["", "", "slti", "sltiu", "xori", "", "ori", "andi"];
      return ins(names[f3], `${R(rd)},${R(rs1)},${immI}`);
    }
    case 0x33: {
      let names: string[];
      if (f7 === 0) names = ["add", "sll", "slt", "sltu", "xor", "srl", "or", "and"];
      else if (f7 === 1) names = ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"];
      else if (f7 === 0x20 && (f3 === 0 || f3 === 5)) names = ["sub", "", "", "", "", "sra", "", ""];
      else return ILLEGAL;
      const n = names[f3];
      if (n === "sub" && rs1 === 0) return ins("neg", `${R(rd)},${R(rs2)}`);
      if (n === "sltu" && rs1 === 0) return ins("snez", `${R(rd)},${R(rs2)}`);
      if (n === "slt" && rs2 === 0) return ins("sltz", `${R(rd)},${R(rs1)}`);
      if (n === "slt" && rs1 === 0) return ins("sgtz", `${R(rd)},${R(rs2)}`);
      return ins(n, `${R(rd)},${R(rs1)},${R(rs2)}`);
    }
    case 0x0f:
      if (f3 === 1) return ins("fence.i");
      if (f3 === 0) {
        const set = (bits: number) => ["i", "o", "r", "w"].filter((_, i) => (bits >>> (3 - i)) & 1).join("");
        return ins("fence", `${set((inst >>> 24) & 15)},${set((inst >>> 20) & 15)}`);
      }
      return ILLEGAL;
    case 0x2f: {
      if (f3 !== 2) return ILLEGAL;
      const f5 = inst >>> 27;
      const names: Record<number, string> = {
        0x02: "lr", 0x03: "sc", 0x01: "amoswap", 0x00: "amoadd", 0x04: "amoxor", 0x0c: "amoand",
        0x08: "amoor", 0x10: "amomin", 0x14: "amomax", 0x18: "amominu", 0x1c: "amomaxu",
      };
      const n = names[f5];
      if (!n || (f5 === 0x02 && rs2 !== 0)) return ILLEGAL;
      const suffix = ((inst >>> 26) & 1 ? ".aq" : "") + ((inst >>> 25) & 1 ? ".rl" : "");
      const m = `${n}.w${suffix}`;
      return f5 === 0x02 ? ins(m, `${R(rd)},(${R(rs1)})`) : ins(m, `${R(rd)},${R(rs2)},(${R(rs1)})`);
    }
    case 0x73: {
      if (f3 === 0) {
        switch (inst) {
          case 0x00000073: return ins("ecall");
          case 0x00100073: return ins("ebreak");
          case 0x10200073: return ins("sret");
          case 0x30200073: return ins("mret");
          case 0x10500073: return ins("wfi");
        }
        if ((inst & 0xfe007fff) === 0x12000073) return ins("sfence.vma", `${R(rs1)},${R(rs2)}`);
        return ILLEGAL;
      }
      const csr = inst >>> 20;
      const names = ["", "csrrw", "csrrs", "csrrc", "", "csrrwi", "csrrsi", "csrrci"];
      if (!names[f3]) return ILLEGAL;
      const src = f3 >= 5 ? `${rs1}` : R(rs1);
      return ins(names[f3], `${R(rd)},${csrName(csr)},${src}`);
    }
    default:
      return ILLEGAL;
  }
}

/** One line of HMP `x/i` output, laid out as QEMU prints it. */
export function formatInsnLine(addr: number, inst: number): string {
  const d = disassemble(inst, addr);
  const bytes = d.length === 2 ? (inst & 0xffff).toString(16).padStart(4, "0") : (inst >>> 0).toString(16).padStart(8, "0");
  let line = `0x${(addr >>> 0).toString(16).padStart(8, "0")}:  ${bytes.padEnd(18)}${d.mnemonic.padEnd(24)}`;
  if (d.comment !== undefined) line += `${d.operands.padEnd(24)}# ${d.comment}`;
  else line += d.operands;
  return line;
}
