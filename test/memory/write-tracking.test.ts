// RAM's one write-tracking path: guest stores (fast and slow), the MMU's A/D updates and
// device DMA all set dirty bits, and all of them reach a listener on a watched page.

import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { ACCESS_STORE, PRV_S } from "../../src/cpu/constants.js";
import { translate } from "../../src/cpu/mmu.js";
import { RAM_BASE } from "../../src/core/board.js";
import { WriteTracker, markDirtyRange, pageBitmapBytes } from "../../src/memory/write-tracking.js";
import { writeElf } from "../cpu/elf-writer.js";
import { addi, enc, li, sw } from "../cpu/rv-asm.js";

function program(words: number[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const dv = new DataView(bytes.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return writeElf([{ addr: RAM_BASE, bytes }], RAM_BASE);
}

type Heard = [page: number, off: number, len: number];

function listen(m: Machine): Heard[] {
  const heard: Heard[] = [];
  m.ram.tracking.setListener((page, off, len) => heard.push([page, off, len]));
  return heard;
}

const pageOf = (pa: number) => (pa - RAM_BASE) >>> 12;

describe("RAM write tracking", () => {
  it("reports guest stores to a watched page, even one already in the write TLB, and stops when unwatched", () => {
    const target = 0x80123008;
    const other = 0x80200000;
    // t0 = target, t2 = other, t1 = 1; loop: sw t1,0(t0); sw t1,0(t2); addi t1,t1,1; j loop
    const m = new Machine({
      serialOut: () => {},
      kernel: program([...li(5, target), ...li(7, other), addi(6, 0, 1), sw(5, 6, 0), sw(7, 6, 0), addi(6, 6, 1), enc.j(0, -12)]),
    });
    const heard = listen(m);
    m.runSlice(50); // both pages are now in the write TLB
    expect(heard).toEqual([]);
    m.ram.tracking.watch(pageOf(target));
    const before = m.ram.load32(target);
    m.runSlice(30);
    // Each round stores the next counter value: one report per store to the watched page.
    expect(heard.length).toBeGreaterThan(5);
    expect(heard.length).toBe(m.ram.load32(target) - before);
    for (const h of heard) expect(h).toEqual([pageOf(target), target - RAM_BASE, 4]);
    m.ram.tracking.unwatch(pageOf(target));
    heard.length = 0;
    m.runSlice(30);
    expect(heard).toEqual([]);
  });

  it("reports the MMU's A/D update of a page-table entry on a watched page", () => {
    const m = new Machine({ serialOut: () => {} });
    const root = 0x80400000;
    const leafTable = 0x80401000;
    const va = 0x00403000;
    // Sv32: root[1] -> leafTable; leafTable[3] -> 0x80500000, V|R|W, A and D clear.
    m.ram.store32(root + 4 * (va >>> 22), ((leafTable >>> 12) << 10) | 1);
    const pteAddr = leafTable + 4 * ((va >>> 12) & 0x3ff);
    m.ram.store32(pteAddr, ((0x80500000 >>> 12) << 10) | 0b111);
    m.cpu.satp = (1 << 31) | (root >>> 12);
    const heard = listen(m);
    m.ram.tracking.watch(pageOf(pteAddr));
    m.ram.dirty.fill(0);
    expect(translate(m.cpu, va, ACCESS_STORE, PRV_S)).toBe(0x80500000);
    expect(m.ram.load32(pteAddr) & 0xc0).toBe(0xc0);
    expect(heard).toEqual([[pageOf(pteAddr), pteAddr - RAM_BASE, 4]]);
    expect(m.ram.isDirty(pageOf(pteAddr))).toBe(true);
  });

  it("reports DMA and device ring writes to watched pages only, and marks every page dirty", () => {
    const m = new Machine({ serialOut: () => {} });
    const heard = listen(m);
    const watched = pageOf(0x80301000);
    m.ram.tracking.watch(watched);
    m.ram.dirty.fill(0);
    // 8 bytes straddling the watched page's first byte: only its part is reported.
    m.ram.dmaWrite(0x80300ffc, new Uint8Array(8));
    m.ram.store32(0x80301800, 7);
    m.ram.store16(0x80302000, 7);
    m.ram.dmaWrite(0x80310000, new Uint8Array(16));
    expect(heard).toEqual([
      [watched, 0x301000, 4],
      [watched, 0x301800, 4],
    ]);
    for (const p of [0x300, 0x301, 0x302, 0x310]) expect(m.ram.isDirty(p)).toBe(true);
    expect(m.ram.isDirty(0x303)).toBe(false);
  });

  it("marks each page a range touches, and refuses to watch a page outside RAM", () => {
    const dirty = new Int32Array(pageBitmapBytes(1 << 20) / 4);
    markDirtyRange(dirty, 0xfff, 2);
    markDirtyRange(dirty, 0x20000, 0);
    expect([...dirty]).toEqual([0b11, 0, 0, 0, 0, 0, 0, 0]);
    const t = new WriteTracker(dirty, 1 << 20);
    expect(() => t.watch(256)).toThrow(/outside RAM/);
    expect(() => new WriteTracker(new Int32Array(1), 1 << 20)).toThrow(/covers 32 pages/);
  });
});
