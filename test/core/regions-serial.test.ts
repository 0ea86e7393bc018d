// The serial rings end to end, through the real binary: output larger than the ring gets out
// whole and in order before the exit status, whether it comes a byte at a time (UART) or in
// one write several times the ring's size (an HTIF console write, which must wait for the
// main thread to make room).
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_SERIAL_RING_BYTES } from "../../src/core/regions.js";
import { tinyElf } from "../helpers/elf.js";
import { BIN, tempDir } from "../helpers/vm.js";
import { addi, enc, li, sw } from "../cpu/rv-asm.js";

const sb = (rs1: number, rs2: number, imm: number) => enc.s(0x23, 0, rs1, rs2, imm);
const bne = (rs1: number, rs2: number, imm: number) => enc.b(1, rs1, rs2, imm);
const COUNT = 4 * DEFAULT_SERIAL_RING_BYTES + 12345;
const expected = (i: number) => (COUNT - i) & 0xff;

/** tinyElf plus a symbol table naming `tohost`, so minivm enables Spike's HTIF for it. */
function elfWithTohost(words: number[], tohost: number): Uint8Array {
  const base = tinyElf(words);
  const strtab = new TextEncoder().encode("\0tohost\0");
  const symtab = new Uint8Array(32);
  new DataView(symtab.buffer).setUint32(16, 1, true); // name "tohost"
  new DataView(symtab.buffer).setUint32(20, tohost, true); // value
  const symOff = base.length;
  const strOff = symOff + symtab.length;
  const shOff = (strOff + strtab.length + 3) & ~3;
  const out = new Uint8Array(shOff + 3 * 40);
  out.set(base);
  out.set(symtab, symOff);
  out.set(strtab, strOff);
  const v = new DataView(out.buffer);
  v.setUint32(32, shOff, true); // e_shoff
  v.setUint16(46, 40, true); // e_shentsize
  v.setUint16(48, 3, true); // e_shnum: null, .symtab, .strtab
  const sh = (i: number, type: number, off: number, size: number, link: number) => {
    v.setUint32(shOff + i * 40 + 4, type, true);
    v.setUint32(shOff + i * 40 + 16, off, true);
    v.setUint32(shOff + i * 40 + 20, size, true);
    v.setUint32(shOff + i * 40 + 24, link, true);
  };
  sh(1, 2, symOff, symtab.length, 2); // SHT_SYMTAB, strings in section 2
  sh(2, 3, strOff, strtab.length, 0); // SHT_STRTAB
  return out;
}

function run(elf: Uint8Array): { status: number | null; stdout: Uint8Array; stderr: string } {
  const kernel = join(tempDir(), "flood.elf");
  writeFileSync(kernel, elf);
  const r = spawnSync(process.execPath, [BIN, "run", "--bios", "none", "--kernel", kernel], { timeout: 120_000, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  return { status: r.status, stdout: new Uint8Array(r.stdout), stderr: r.stderr.toString() };
}

function expectFlood(out: Uint8Array): void {
  expect(out.length).toBe(COUNT);
  expect(out.findIndex((b, i) => b !== expected(i))).toBe(-1);
}

describe("serial output through the shared ring", () => {
  it("delivers a byte-at-a-time flood larger than the ring, in order, before the finisher's exit status", () => {
    // t0 = UART0 THR, t1 = COUNT; loop: THR = t1 & 0xff; t1--; while t1 != 0.
    // Then the finisher's FAIL with code 5: (5 << 16) | 0x3333.
    const words = [
      ...li(5, 0x10000000),
      ...li(6, COUNT),
      sb(5, 6, 0),
      addi(6, 6, -1),
      bne(6, 0, -8),
      ...li(5, 0x100000),
      ...li(6, (5 << 16) | 0x3333),
      sw(5, 6, 0),
      enc.j(0, 0),
    ];
    const r = run(tinyElf(words));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(5);
    expectFlood(r.stdout);
  });

  it("delivers one console write several times the ring's size, then the exit status", () => {
    const block = 0x80001000; // HTIF syscall block: write(1, buffer, COUNT)
    const tohost = 0x80002000;
    const buffer = 0x80003000;
    const code = [
      ...li(5, tohost),
      ...li(6, block),
      sw(5, 6, 0),
      sw(5, 0, 4), // the high word's store makes HTIF act: run the syscall
      addi(6, 0, (5 << 1) | 1),
      sw(5, 6, 0),
      sw(5, 0, 4), // exit with code 5
      enc.j(0, 0),
    ];
    const words = new Array<number>((buffer - 0x80000000 + COUNT + 3) >>> 2).fill(0);
    code.forEach((w, i) => (words[i] = w));
    const at = (addr: number) => (addr - 0x80000000) >>> 2;
    words[at(block)] = 64; // SYS_write
    words[at(block) + 2] = 1; // fd
    words[at(block) + 4] = buffer;
    words[at(block) + 6] = COUNT;
    for (let i = 0; i < COUNT; i++) words[at(buffer) + (i >>> 2)] |= expected(i) << (8 * (i & 3));
    const r = run(elfWithTohost(words, tohost));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(5);
    expectFlood(r.stdout);
  });
});
