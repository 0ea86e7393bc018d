// The target description GDB reads with qXfer:features:read (gdb.texinfo "Target
// Descriptions", "RISC-V Features"): riscv:rv32 with the core registers (numbers 0-32: x0-x31,
// pc), the virtual `priv` register (33) and the CSRs at 34 + csr number, the layout QEMU's
// stub offers a hart without F/D/V (target/riscv/gdbstub.c registers them in that order).

import { CSR } from "../cpu/csr.js";

const ABI = [
  "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
  "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
];

export const REG_PC = 32;
export const REG_PRIV = 33;
/** GDB register number of CSR n: CSR_BASE + n. */
export const CSR_BASE = 34;

/** The CSRs this hart has, by number, with the names GDB shows for them. */
export function gdbCsrs(): [number, string][] {
  const out: [number, string][] = Object.entries(CSR).map(([name, n]) => [n, name]);
  for (let i = 1; i < 4; i++) out.push([0x3a0 + i, `pmpcfg${i}`]);
  for (let i = 1; i < 16; i++) out.push([0x3b0 + i, `pmpaddr${i}`]);
  return out.sort((a, b) => a[0] - b[0]);
}

function cpuFeature(): string {
  const regs = ABI.map((name, i) => {
    const type = i === 1 ? "code_ptr" : i === 2 || i === 8 ? "data_ptr" : "int";
    return `  <reg name="${name}" bitsize="32" type="${type}"/>`;
  });
  regs.push(`  <reg name="pc" bitsize="32" type="code_ptr"/>`);
  return feature("org.gnu.gdb.riscv.cpu", regs);
}

function virtualFeature(): string {
  return feature("org.gnu.gdb.riscv.virtual", [`  <reg name="priv" bitsize="32" regnum="${REG_PRIV}"/>`]);
}

function csrFeature(): string {
  return feature(
    "org.gnu.gdb.riscv.csr",
    gdbCsrs().map(([n, name]) => `  <reg name="${name}" bitsize="32" regnum="${CSR_BASE + n}"/>`),
  );
}

function feature(name: string, regs: string[]): string {
  return `<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n<feature name="${name}">\n${regs.join("\n")}\n</feature>\n`;
}

/** Every annex GDB may read, by name. */
export function targetAnnexes(): Map<string, string> {
  const files = new Map<string, string>([
    ["riscv-32bit-cpu.xml", cpuFeature()],
    ["riscv-32bit-virtual.xml", virtualFeature()],
    ["riscv-csr.xml", csrFeature()],
  ]);
  const includes = [...files.keys()].map((f) => `  <xi:include href="${f}"/>`).join("\n");
  files.set(
    "target.xml",
    `<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n<target>\n  <architecture>riscv:rv32</architecture>\n${includes}\n</target>\n`,
  );
  return files;
}
