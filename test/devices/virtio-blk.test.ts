// Plays the guest's virtio driver against the real virtio-mmio + virtio-blk code through its
// MMIO registers, with guest RAM in an ArrayBuffer and a real raw image file underneath.
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlockBackend } from "../../src/block/backend.js";
import { IoPool } from "../../src/block/io-pool.js";
import { blockstatsInfo } from "../../src/block/qapi-block.js";
import { VirtioBlk } from "../../devices/virtio-blk.js";
import { VirtioMmio } from "../../devices/virtio-mmio.js";
import { TestIrq, TestRam } from "./virtio-test-ram.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const RAM_BASE = 0x80000000;
const RAM_SIZE = 1 << 20;
const DESC = RAM_BASE + 0x1000;
const AVAIL = RAM_BASE + 0x2000;
const USED = RAM_BASE + 0x3000;
const HDR = RAM_BASE + 0x10000;
const DATA = RAM_BASE + 0x20000;
const STATUS = RAM_BASE + 0x8000;
const QSIZE = 16;
const DISK = 256 * 1024;

const dir = mkdtempSync(join(tmpdir(), "minivm-vblk-"));
const pool = new IoPool();
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A minimal guest driver: one queue, requests built as header / data / status chains. */
class Guest {
  ram = new TestRam(RAM_BASE, RAM_SIZE);
  irq = new TestIrq();
  dev!: VirtioMmio;
  blk!: BlockBackend;
  vblk!: VirtioBlk;
  availIdx = 0;
  private waiters: Array<() => void> = [];

  async setup(file: string, serial = "minivm-disk-0"): Promise<void> {
    this.blk = await BlockBackend.open({ file, format: "raw", id: "drive0", pool });
    this.vblk = new VirtioBlk(this.blk, { serial });
    const irq = this.irq;
    const origSet = irq.set.bind(irq);
    irq.set = (level: boolean) => {
      origSet(level);
      if (level) for (const w of this.waiters.splice(0)) w();
    };
    this.dev = new VirtioMmio(this.ram, irq, this.vblk);
  }

  r(off: number): number {
    return this.dev.read(off, 4);
  }
  w(off: number, v: number): void {
    this.dev.write(off, 4, v);
  }

  init(features1 = 1, queueSize = QSIZE): void {
    this.w(0x70, 0);
    this.w(0x70, 1);
    this.w(0x70, 1 | 2);
    this.w(0x24, 0);
    this.w(0x20, this.r(0x10) & ((1 << 9) | (1 << 6) | (1 << 2) | (1 << 13) | (1 << 14) | (1 << 11)));
    this.w(0x24, 1);
    this.w(0x20, features1);
    this.w(0x70, 1 | 2 | 8);
    this.w(0x30, 0);
    this.w(0x38, queueSize);
    this.w(0x80, DESC);
    this.w(0x84, 0);
    this.w(0x90, AVAIL);
    this.w(0x94, 0);
    this.w(0xa0, USED);
    this.w(0xa4, 0);
    this.w(0x44, 1);
    this.w(0x70, 1 | 2 | 4 | 8);
    this.availIdx = 0;
  }

  desc(i: number, addr: number, len: number, flags: number, next: number): void {
    const d = DESC + 16 * i;
    this.ram.store32(d, addr);
    this.ram.store32(d + 4, 0);
    this.ram.store32(d + 8, len);
    this.ram.store16(d + 12, flags);
    this.ram.store16(d + 14, next);
  }

  kick(head: number): void {
    this.ram.store16(AVAIL + 4 + 2 * (this.availIdx % QSIZE), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.ram.store16(AVAIL + 2, this.availIdx);
    this.w(0x50, 0);
  }

  usedIdx(): number {
    return this.ram.load16(USED + 2);
  }

  /** Waits for the used-buffer interrupt, acknowledges it, returns [status, used len]. */
  async complete(before: number): Promise<[number, number]> {
    while (this.usedIdx() === before) await new Promise<void>((r) => this.waiters.push(r));
    const isr = this.r(0x60);
    this.w(0x64, isr);
    const slot = before % QSIZE;
    return [this.ram.bytes[STATUS - RAM_BASE], this.ram.load32(USED + 4 + 8 * slot + 4)];
  }

  /** One request: header, optional data (device-writable for reads), status. */
  async request(type: number, sector: number, data: { out?: Uint8Array; inLen?: number } = {}): Promise<[number, number]> {
    const h = HDR - RAM_BASE;
    this.ram.view.setUint32(h, type, true);
    this.ram.view.setUint32(h + 4, 0, true);
    this.ram.view.setUint32(h + 8, sector >>> 0, true);
    this.ram.view.setUint32(h + 12, Math.floor(sector / 2 ** 32), true);
    this.ram.bytes[STATUS - RAM_BASE] = 0xff;
    const len = data.out ? data.out.length : (data.inLen ?? 0);
    if (data.out) this.ram.bytes.set(data.out, DATA - RAM_BASE);
    if (len > 0) {
      this.desc(0, HDR, 16, 1, 1);
      this.desc(1, DATA, len, 1 | (data.out ? 0 : 2), 2);
      this.desc(2, STATUS, 1, 2, 0);
    } else {
      this.desc(0, HDR, 16, 1, 2);
      this.desc(2, STATUS, 1, 2, 0);
    }
    const before = this.usedIdx();
    this.kick(0);
    return this.complete(before);
  }
}

let g: Guest;
let file: string;
beforeEach(async () => {
  file = join(dir, `disk-${Math.random().toString(36).slice(2)}.raw`);
  const img = new Uint8Array(DISK);
  for (let i = 0; i < DISK; i++) img[i] = (i * 7) & 0xff;
  writeFileSync(file, img);
  g = new Guest();
  await g.setup(file);
});

afterEach(async () => {
  await g.vblk.drain();
  await g.blk.close();
});

describe("virtio-blk over virtio-mmio", () => {
  it("identifies as a modern block device with VERSION_1, FLUSH, DISCARD, WRITE_ZEROES", () => {
    expect(g.r(0x000)).toBe(0x74726976);
    expect(g.r(0x004)).toBe(2);
    expect(g.r(0x008)).toBe(2);
    g.w(0x14, 1);
    expect(g.r(0x10) & 1).toBe(1);
    g.w(0x14, 0);
    const f = g.r(0x10);
    for (const bit of [2, 6, 9, 13, 14]) expect((f >>> bit) & 1).toBe(1);
    expect((f >>> 5) & 1).toBe(0);
  });

  it("exposes capacity, blk_size and seg_max in config space", () => {
    expect(g.r(0x100)).toBe(DISK / 512);
    expect(g.r(0x104)).toBe(0);
    expect(g.r(0x10c)).toBe(254);
    expect(g.r(0x114)).toBe(512);
    expect(g.dev.read(0x120, 1)).toBe(1);
  });

  it("refuses FEATURES_OK when the driver does not accept VERSION_1", () => {
    g.init(0);
    expect(g.r(0x70) & 8).toBe(0);
  });

  it("writes, flushes and reads back through the real file, asynchronously", async () => {
    g.init();
    const data = new Uint8Array(1024).map((_, i) => (i * 13 + 1) & 0xff);
    expect(await g.request(1, 8, { out: data })).toEqual([0, 1]);
    expect(await g.request(4, 0)).toEqual([0, 1]);
    expect(readFileSync(file).subarray(4096, 5120)).toEqual(Buffer.from(data));
    g.ram.bytes.fill(0, DATA - RAM_BASE, DATA - RAM_BASE + 1024);
    g.ram.dirtyPages.clear();
    expect(await g.request(0, 8, { inLen: 1024 })).toEqual([0, 1025]);
    expect(g.ram.bytes.subarray(DATA - RAM_BASE, DATA - RAM_BASE + 1024)).toEqual(data);
    expect(g.ram.dirtyPages.has((DATA - RAM_BASE) >> 12)).toBe(true);
    expect(g.ram.dirtyPages.has((USED - RAM_BASE) >> 12)).toBe(true);
    expect(g.ram.dirtyPages.has((STATUS - RAM_BASE) >> 12)).toBe(true);
    const st = blockstatsInfo(g.blk).stats;
    expect([st.rd_operations, st.wr_operations, st.flush_operations, st.rd_bytes, st.wr_bytes]).toEqual([1, 1, 1, 1024, 1024]);
  });

  it("flushes after every write when the driver did not negotiate FLUSH (write-through)", async () => {
    g.w(0x70, 0);
    g.w(0x70, 3);
    g.w(0x24, 1);
    g.w(0x20, 1);
    g.w(0x70, 11);
    g.w(0x38, QSIZE);
    g.w(0x80, DESC);
    g.w(0x90, AVAIL);
    g.w(0xa0, USED);
    g.w(0x44, 1);
    g.w(0x70, 15);
    g.availIdx = 0;
    expect((await g.request(1, 0, { out: new Uint8Array(512) }))[0]).toBe(0);
    expect(blockstatsInfo(g.blk).stats.flush_operations).toBe(1);
  });

  it("merges contiguous requests of one kick into one backend request and counts *_merged", async () => {
    g.init();
    const kickAll = async (type: number, sectors: number[], len: number): Promise<void> => {
      sectors.forEach((sector, i) => {
        const hdr = HDR + 32 * i;
        g.ram.store32(hdr, type);
        g.ram.store32(hdr + 4, 0);
        g.ram.store32(hdr + 8, sector);
        g.ram.store32(hdr + 12, 0);
        g.desc(3 * i, hdr, 16, 1, 3 * i + 1);
        g.desc(3 * i + 1, DATA + i * 4096, len, 1 | (type === 0 ? 2 : 0), 3 * i + 2);
        g.desc(3 * i + 2, STATUS + 16 * i, 1, 2, 0);
        g.ram.store16(AVAIL + 4 + 2 * (g.availIdx % QSIZE), 3 * i);
        g.availIdx = (g.availIdx + 1) & 0xffff;
      });
      const before = g.usedIdx();
      g.ram.store16(AVAIL + 2, g.availIdx);
      g.w(0x50, 0);
      while (((g.usedIdx() - before) & 0xffff) < sectors.length) await g.complete(g.usedIdx());
      g.w(0x64, g.r(0x60));
      sectors.forEach((_, i) => expect(g.ram.bytes[STATUS + 16 * i - RAM_BASE]).toBe(0));
    };
    // reads of sectors 9, 8, 11, 10 (out of order): sorted and merged into one
    await kickAll(0, [9, 8, 11, 10], 512);
    let st = blockstatsInfo(g.blk).stats;
    expect([st.rd_operations, st.rd_merged, st.rd_bytes]).toEqual([4, 3, 2048]);
    [9, 8, 11, 10].forEach((sector, i) => {
      const got = g.ram.bytes.subarray(DATA + i * 4096 - RAM_BASE, DATA + i * 4096 - RAM_BASE + 512);
      expect(got[0]).toBe((sector * 512 * 7) & 0xff);
    });
    // writes at 100, 101 and 200: two groups, one merge
    for (let i = 0; i < 3; i++) g.ram.bytes.fill(0x40 + i, DATA + i * 4096 - RAM_BASE, DATA + i * 4096 - RAM_BASE + 512);
    await kickAll(1, [100, 101, 200], 512);
    st = blockstatsInfo(g.blk).stats;
    expect([st.wr_operations, st.wr_merged]).toEqual([3, 1]);
    const f = readFileSync(file);
    expect([f[100 * 512], f[101 * 512], f[200 * 512]]).toEqual([0x40, 0x41, 0x42]);
  });

  it("answers GET_ID with the serial", async () => {
    g.init();
    expect((await g.request(8, 0, { inLen: 20 }))[0]).toBe(0);
    expect(new TextDecoder().decode(g.ram.bytes.subarray(DATA - RAM_BASE, DATA - RAM_BASE + 13))).toBe("minivm-disk-0");
  });

  it("fails out-of-range and misaligned requests with IOERR and counts them invalid", async () => {
    g.init();
    expect((await g.request(0, DISK / 512, { inLen: 512 }))[0]).toBe(1);
    expect((await g.request(1, 0, { out: new Uint8Array(100) }))[0]).toBe(1);
    const st = blockstatsInfo(g.blk).stats;
    expect(st.invalid_rd_operations).toBe(1);
    expect(st.invalid_wr_operations).toBe(1);
    expect(Number(st.rd_operations) + Number(st.wr_operations)).toBe(0);
  });

  it("refuses a transfer larger than 64 MiB made of repeated descriptors, without allocating it", async () => {
    // a 1 TiB sparse disk, and a read whose 16 descriptors all point at the same 8 MiB of RAM
    await g.blk.close();
    const { createImage } = await import("../../src/block/create.js");
    const big = join(dir, "big.qcow2");
    await createImage({ filename: big, format: "qcow2", size: 2 ** 40, pool });
    g = new Guest();
    g.ram = new TestRam(RAM_BASE, 16 << 20);
    await g.setup(big);
    g.init();
    g.desc(0, HDR, 16, 1, 1);
    for (let i = 1; i < 15; i++) g.desc(i, DATA, 8 << 20, 3, i + 1);
    g.desc(15, STATUS, 1, 2, 0);
    g.ram.store32(HDR, 0);
    const before = g.usedIdx();
    g.kick(0);
    const [status] = await g.complete(before);
    expect(status).toBe(1);
    expect(blockstatsInfo(g.blk).stats.invalid_rd_operations).toBe(1);
  });

  it("answers an unknown request type with UNSUPP", async () => {
    g.init();
    expect((await g.request(99, 0))[0]).toBe(2);
  });

  it("WRITE_ZEROES and DISCARD make sectors read as zero", async () => {
    g.init();
    const seg = (sector: number, n: number, flags: number): Uint8Array => {
      const b = new Uint8Array(16);
      const v = new DataView(b.buffer);
      v.setUint32(0, sector, true);
      v.setUint32(8, n, true);
      v.setUint32(12, flags, true);
      return b;
    };
    expect((await g.request(13, 0, { out: seg(2, 2, 1) }))[0]).toBe(0);
    expect((await g.request(11, 0, { out: seg(10, 1, 0) }))[0]).toBe(0);
    expect((await g.request(13, 0, { out: seg(0, 1, 2) }))[0]).toBe(2);
    const f = readFileSync(file);
    expect(f.subarray(1024, 2048).every((x) => x === 0)).toBe(true);
    expect(f.subarray(5120, 5632).every((x) => x === 0)).toBe(true);
    expect(f[2048]).toBe((2048 * 7) & 0xff);
  });

  it("enters NEEDS_RESET, with a config interrupt, for a descriptor outside RAM", async () => {
    g.init();
    g.desc(0, HDR, 16, 1, 1);
    g.desc(1, 0x1000, 512, 3, 2);
    g.desc(2, STATUS, 1, 2, 0);
    g.kick(0);
    expect(g.r(0x70) & 0x40).toBe(0x40);
    expect(g.r(0x60) & 2).toBe(2);
    expect(g.usedIdx()).toBe(0);
  });

  it("enters NEEDS_RESET for a descriptor loop and recovers after a reset", async () => {
    g.init();
    g.desc(0, HDR, 16, 1, 1);
    g.desc(1, DATA, 512, 1, 0);
    g.kick(0);
    expect(g.r(0x70) & 0x40).toBe(0x40);
    g.init();
    expect(g.r(0x70) & 0x40).toBe(0);
    expect((await g.request(4, 0))[0]).toBe(0);
  });

  it("refuses a queue size that is not a power of two", () => {
    g.init(1, 12);
    expect(g.r(0x70) & 0x40).toBe(0x40);
    expect(g.r(0x44)).toBe(0);
  });

  it("drops a completion that arrives after the driver reset the device", async () => {
    g.init();
    g.ram.store32(HDR, 0);
    g.desc(0, HDR, 16, 1, 1);
    g.desc(1, DATA, 4096, 3, 2);
    g.desc(2, STATUS, 1, 2, 0);
    g.kick(0);
    g.w(0x70, 0);
    await g.vblk.drain();
    expect(g.usedIdx()).toBe(0);
    expect(g.r(0x60)).toBe(0);
  });

  it("survives hundreds of garbage rings without throwing or writing outside RAM", async () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
    for (let round = 0; round < 300; round++) {
      g.init();
      for (let i = 0; i < QSIZE; i++) {
        const addr = rnd() < 0.7 ? RAM_BASE + Math.floor(rnd() * RAM_SIZE) : Math.floor(rnd() * 2 ** 32);
        g.desc(i, addr, Math.floor(rnd() * 70000), Math.floor(rnd() * 8), Math.floor(rnd() * 20));
      }
      g.ram.store16(AVAIL + 2, Math.floor(rnd() * 40));
      for (let i = 0; i < QSIZE; i++) g.ram.store16(AVAIL + 4 + 2 * i, Math.floor(rnd() * 20));
      expect(() => g.w(0x50, 0)).not.toThrow();
      await g.vblk.drain();
    }
  });
});
