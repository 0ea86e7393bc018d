// HMP `x` and `xp`: dump guest memory in QEMU's memory_dump() format (monitor/hmp-cmds.c):
// `/COUNT FORMAT SIZE` with formats x d u o c and sizes b h w g, 16 bytes a line (8 for
// bytes), unassigned physical memory reading as all ones as it does in QEMU.

import type { Machine } from "../core/machine.js";
import { PRV_M } from "../cpu/constants.js";
import { formatInsnLine } from "../cpu/disasm.js";

export interface DumpRequest {
  count: number;
  format: "x" | "d" | "u" | "o" | "c" | "i";
  size: 1 | 2 | 4 | 8;
}

/** The format and size of the last dump: QEMU's next `x`/`xp` defaults to them. */
export interface DumpDefaults {
  format: DumpRequest["format"];
  size: DumpRequest["size"];
}

/** Parse QEMU's `/fmt`: optional count, then format and size letters in any order. */
export function parseDumpFormat(spec: string | undefined, last: DumpDefaults = { format: "x", size: 4 }): DumpRequest {
  const r: DumpRequest = { count: 1, format: last.format, size: last.size };
  if (spec === undefined) return r;
  const m = /^\/(\d*)([a-z]*)$/.exec(spec);
  if (m === null) throw new Error(`invalid format '${spec}'`);
  if (m[1] !== "") r.count = Number(m[1]);
  for (const ch of m[2] ?? "") {
    if ("xduoci".includes(ch)) r.format = ch as DumpRequest["format"];
    else if (ch === "b") r.size = 1;
    else if (ch === "h") r.size = 2;
    else if (ch === "w") r.size = 4;
    else if (ch === "g") r.size = 8;
    else throw new Error(`invalid char in format: '${ch}'`);
  }
  if (r.format === "c") r.size = 1;
  return r;
}

/** Sv32 walk without side effects (QEMU's get_phys_page_debug): no A/D updates, no faults raised. */
export function debugTranslate(machine: Machine, va: number): number | null {
  const cpu = machine.cpu;
  if (cpu.priv === PRV_M || cpu.satp >>> 31 === 0) return va >>> 0;
  let base = (cpu.satp & 0x3fffff) * 4096;
  for (let level = 1; level >= 0; level--) {
    const pte = machine.readPhys(base + ((va >>> (12 + 10 * level)) & 0x3ff) * 4, 4);
    if (pte === null || (pte & 1) === 0) return null;
    if ((pte & 0xe) === 0) {
      base = (pte >>> 10) * 4096;
      continue;
    }
    const ppn = pte >>> 10;
    return level === 1 ? ppn * 4096 + (va & 0x3fffff) : ppn * 4096 + (va & 0xfff);
  }
  return null;
}

/**
 * QEMU's virt board maps a PCIe host (hw/riscv/virt.c memmap: PIO at 0x3000000, ECAM at
 * 0x30000000, MMIO at 0x40000000) that minivm does not have; with no device behind them
 * QEMU's reads there succeed with all ones, so `xp` shows 0xff.. rather than failing.
 */
const PCIE_WINDOWS: ReadonlyArray<readonly [number, number]> = [
  [0x03000000, 0x10000],
  [0x30000000, 0x10000000],
  [0x40000000, 0x40000000],
];

function inPcieWindow(pa: number, size: number): boolean {
  return PCIE_WINDOWS.some(([base, len]) => pa >= base && pa + size <= base + len);
}

/** One value, or null where nothing answers (QEMU's address_space_read failing). */
function readValue(machine: Machine, pa: number, size: 1 | 2 | 4 | 8): bigint | null {
  if (size === 8) {
    const hi = readValue(machine, pa + 4, 4);
    const lo = readValue(machine, pa, 4);
    return hi === null || lo === null ? null : (hi << 32n) | lo;
  }
  const v = machine.readPhys(pa, size);
  if (v === null) return inPcieWindow(pa, size) ? BigInt(2 ** (8 * size) - 1) : null;
  return BigInt(v >>> 0);
}

function formatValue(v: bigint, r: DumpRequest): string {
  const bits = r.size * 8;
  switch (r.format) {
    case "x":
      return " 0x" + v.toString(16).padStart(r.size * 2, "0");
    case "o":
      // printf("%#*o"): a leading 0 unless the value is 0, padded with spaces.
      return " " + (v === 0n ? "0" : "0" + v.toString(8)).padStart(Math.floor((bits + 2) / 3), " ");
    case "u":
      return " " + v.toString().padStart(Math.floor((bits * 10 + 32) / 33), " ");
    case "d": {
      // QEMU loads b, h and w zero-extended into an int64, so only g comes out negative.
      const signed = bits === 64 && v >= 1n << 63n ? v - (1n << 64n) : v;
      return " " + signed.toString().padStart(Math.floor((bits * 10 + 32) / 33), " ");
    }
    case "i":
      return "";
    case "c": {
      const c = Number(v);
      return " " + (c >= 32 && c < 127 ? `'${String.fromCharCode(c)}'` : `'\\x${c.toString(16).padStart(2, "0")}'`);
    }
  }
}

/** `x/i`: one disassembled instruction a line, as QEMU's monitor prints them. */
function disassembleDump(machine: Machine, r: DumpRequest, addr: number, physical: boolean): string {
  let out = "";
  let a = addr >>> 0;
  for (let i = 0; i < r.count; i++) {
    const pa = physical ? a : debugTranslate(machine, a);
    const word = pa === null ? null : readValue(machine, pa, 4);
    if (word === null) return out + "Cannot access memory\n";
    out += formatInsnLine(a, Number(word)) + "\n";
    a = (a + 4) >>> 0;
  }
  return out;
}

/** `xp` (physical: 16 hex digits of address) or `x` (virtual: 8, the target's word). */
export function memoryDump(machine: Machine, r: DumpRequest, addr: number, physical: boolean): string {
  if (r.format === "i") return disassembleDump(machine, r, addr, physical);
  const lineSize = r.size === 1 ? 8 : 16;
  let out = "";
  let remaining = r.count * r.size;
  let a = addr >>> 0;
  while (remaining > 0) {
    out += (physical ? a.toString(16).padStart(16, "0") : a.toString(16).padStart(8, "0")) + ":";
    const n = Math.min(remaining, lineSize);
    // QEMU's memory_dump() reads a whole line first; if any of it fails the line says so
    // after its address, and the dump ends there.
    const values: bigint[] = [];
    for (let i = 0; i < n; i += r.size) {
      const va = (a + i) >>> 0;
      const pa = physical ? va : debugTranslate(machine, va);
      const v = pa === null ? null : readValue(machine, pa, r.size);
      if (v === null) return out + " Cannot access memory\n";
      values.push(v);
    }
    for (const v of values) out += formatValue(v, r);
    out += "\n";
    a = (a + n) >>> 0;
    remaining -= n;
  }
  return out;
}
