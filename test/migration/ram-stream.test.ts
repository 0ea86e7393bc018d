// RamSaver: QEMU's migration bitmap over the shared dirty bitmap, and the records it writes.

import { describe, expect, it } from "vitest";
import { markDirtyRange } from "../../src/memory/write-tracking.js";
import { QemuFileReader, QemuFileWriter } from "../../src/migration/qemu-file.js";
import { RamLoader } from "../../src/migration/ram-load.js";
import { RamSaver } from "../../src/migration/ram-stream.js";
import { Collector, readerOf } from "./stream-helpers.js";

const PAGES = 100;

function setup() {
  const ram = new Uint8Array(new SharedArrayBuffer(PAGES * 4096));
  const dirty = new Int32Array(new SharedArrayBuffer(Math.ceil(PAGES / 32) * 4));
  return { ram, dirty, saver: new RamSaver({ ram, dirty }) };
}

describe("RamSaver", () => {
  it("takes every page at the first sync, then only pages written since, clearing the shared bits", () => {
    const { dirty, saver } = setup();
    markDirtyRange(dirty, 5 * 4096, 1);
    expect(saver.syncDirtyBitmap()).toBe(PAGES);
    expect(Array.from(dirty)).toEqual([0, 0, 0, 0]);
    const f = new QemuFileWriter(new Collector());
    saver.sendDirty(f, Infinity);
    expect(saver.remainingPages).toBe(0);
    expect(saver.zeroPages).toBe(PAGES);
    markDirtyRange(dirty, 3 * 4096, 2 * 4096 + 1);
    markDirtyRange(dirty, 99 * 4096, 4);
    expect(saver.syncDirtyBitmap()).toBe(4);
    expect(saver.lastSyncDirtied).toBe(4);
    expect(saver.syncCount).toBe(2);
    // A page already pending is not counted twice.
    markDirtyRange(dirty, 3 * 4096, 1);
    expect(saver.syncDirtyBitmap()).toBe(4);
  });

  it("writes ZERO records for zero pages and PAGE records for the rest, naming the block once per section", async () => {
    const { ram, saver } = setup();
    ram[7 * 4096 + 10] = 0x55;
    saver.syncDirtyBitmap();
    const sink = new Collector();
    const f = new QemuFileWriter(sink);
    saver.startSection();
    const n = saver.sendDirty(f, Infinity);
    await f.flush();
    const name = "riscv_virt_board.ram";
    expect(n).toBe(8 + 1 + name.length + 1 + (PAGES - 2) * 9 + (8 + 4096));
    expect(saver.normalPages).toBe(1);
    expect(saver.normalBytes).toBe(4096);
    expect(saver.zeroPages).toBe(PAGES - 1);
    const b = sink.bytes();
    expect(b.readBigUInt64BE(0)).toBe(0x02n);
    expect(b.subarray(9, 9 + name.length).toString()).toBe(name);
    expect(b.readBigUInt64BE(9 + name.length + 1)).toBe(0x1000n | 0x22n);
  });

  it("stops at the byte budget and resumes where it stopped", () => {
    const { ram, saver } = setup();
    ram.fill(1);
    saver.syncDirtyBitmap();
    const f = new QemuFileWriter(new Collector());
    saver.startSection();
    saver.sendDirty(f, 3 * 4096);
    expect(saver.pagesSent).toBe(3);
    saver.sendDirty(f, 1);
    expect(saver.pagesSent).toBe(4);
    expect(saver.remainingPages).toBe(PAGES - 4);
  });

  it("its records load back into another RAM", async () => {
    const { ram, saver } = setup();
    for (let i = 0; i < ram.length; i += 4096 * 3) ram[i + 17] = i & 0xff || 1;
    saver.syncDirtyBitmap();
    const sink = new Collector();
    const f = new QemuFileWriter(sink);
    saver.startSection();
    saver.writeBlockList(f);
    saver.sendDirty(f, Infinity);
    saver.writeEos(f);
    await f.flush();
    const dst = new Uint8Array(PAGES * 4096).fill(0xee);
    const loader = new RamLoader({ ram: dst });
    const r: QemuFileReader = readerOf(sink.bytes(), 333);
    await loader.loadSection(r);
    expect(Buffer.from(dst).equals(Buffer.from(ram))).toBe(true);
    expect(loader.zeroPages + loader.normalPages).toBe(PAGES);
    expect(await r.peek8()).toBe(-1);
  });
});
