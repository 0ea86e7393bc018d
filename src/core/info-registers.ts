// HMP `info registers` for the hart, laid out as QEMU 7.2's riscv_cpu_dump_state prints an
// rv32 CPU without H or F/D: the CSR block, then x0..x31 four per line with ABI names.

import type { Cpu } from "../cpu/cpu.js";
import { ABI_NAMES } from "../cpu/registers.js";

const hex8 = (v: number) => (v >>> 0).toString(16).padStart(8, "0");

export function formatInfoRegisters(cpu: Cpu): string {
  const csrs: [string, number][] = [
    ["pc", cpu.pc], ["mhartid", 0], ["mstatus", cpu.mstatus], ["mstatush", cpu.mstatush], ["mip", cpu.mip], ["mie", cpu.mie],
    ["mideleg", cpu.mideleg], ["medeleg", cpu.medeleg], ["mtvec", cpu.mtvec], ["stvec", cpu.stvec],
    ["mepc", cpu.mepc], ["sepc", cpu.sepc], ["mcause", cpu.mcause], ["scause", cpu.scause],
    ["mtval", cpu.mtval], ["stval", cpu.stval], ["mscratch", cpu.mscratch], ["sscratch", cpu.sscratch], ["satp", cpu.satp],
  ];
  let out = "CPU#0\n";
  for (const [name, v] of csrs) out += ` ${name.padEnd(8)} ${hex8(v)}\n`;
  for (let i = 0; i < 32; i++) {
    out += ` ${`x${i}/${ABI_NAMES[i]}`.padEnd(8)} ${hex8(cpu.x[i])}`;
    if (i % 4 === 3) out += "\n";
  }
  return out;
}
