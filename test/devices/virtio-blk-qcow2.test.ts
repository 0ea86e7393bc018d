// A guest driver keeps 16 requests in flight per kick against virtio-blk on a qcow2 overlay
// with a backing file; every read matches a model of the disk, and afterwards qemu-img finds
// the image clean and identical to the model.
import { writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { BlockBackend } from "../../src/block/backend.js";
import { createImage } from "../../src/block/create.js";
import { IoPool } from "../../src/block/io-pool.js";
import { blockstatsInfo, setLatencyHistogram } from "../../src/block/qapi-block.js";
import { VirtioBlk } from "../../devices/virtio-blk.js";
import { VirtioMmio } from "../../devices/virtio-mmio.js";
import { interop, qemuImg, rng, tempDir } from "../block/helpers.js";
import { TestIrq, TestRam } from "./virtio-test-ram.js";

const BASE = 0x80000000;
const Q = 64;
const DESC = BASE + 0x1000;
const AVAIL = BASE + 0x2000;
const USED = BASE + 0x3000;
const HDRS = BASE + 0x4000;
const STATUS = BASE + 0x5000;
const BUFS = BASE + 0x10000;
const SLOT = 16384;
const DISK = 4 << 20;

const pool = new IoPool();
const t = tempDir();
afterAll(async () => {
  await pool.close();
  t.cleanup();
});

describe.runIf(interop)("virtio-blk on qcow2 with many requests in flight", () => {
  it("serves 3200 mixed requests, 16 per kick, and leaves a clean, correct image", async () => {
    const base = t.path("base.raw");
    const model = new Uint8Array(DISK);
    for (let i = 0; i < DISK; i++) model[i] = (i >> 9) & 0xff;
    writeFileSync(base, model);
    const top = t.path("top.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, clusterSize: 4096, backingFile: "base.raw", backingFormat: "raw" });
    const blk = await BlockBackend.open({ file: top, id: "virtio0", pool });
    setLatencyHistogram(blk, { id: "virtio0", boundaries: [100_000, 1_000_000, 10_000_000] });
    const ram = new TestRam(BASE, 2 << 20);
    const irq = new TestIrq();
    let wake: (() => void) | null = null;
    const set = irq.set.bind(irq);
    irq.set = (l: boolean) => {
      set(l);
      if (l && wake) wake();
    };
    const vblk = new VirtioBlk(blk);
    const dev = new VirtioMmio(ram, irq, vblk);
    const w = (o: number, v: number): void => dev.write(o, 4, v);
    w(0x70, 0);
    w(0x70, 3);
    w(0x24, 0);
    w(0x20, (1 << 9) | (1 << 6));
    w(0x24, 1);
    w(0x20, 1);
    w(0x70, 11);
    w(0x38, Q);
    w(0x80, DESC);
    w(0x90, AVAIL);
    w(0xa0, USED);
    w(0x44, 1);
    w(0x70, 15);

    const rnd = rng(77);
    let avail = 0;
    let usedSeen = 0;
    for (let round = 0; round < 200; round++) {
      const write = rnd() < 0.5;
      // 16 disjoint slots, so requests in one kick never overlap
      const slots = new Set<number>();
      while (slots.size < 16) slots.add(Math.floor(rnd() * (DISK / SLOT)));
      const reqs = [...slots].map((s, i) => {
        const len = 512 * (1 + Math.floor(rnd() * 24));
        const off = s * SLOT + 512 * Math.floor(rnd() * ((SLOT - len) / 512 + 1));
        return { i, off, len };
      });
      for (const r of reqs) {
        const hdr = HDRS + 16 * r.i;
        ram.store32(hdr, write ? 1 : 0);
        ram.store32(hdr + 4, 0);
        ram.store32(hdr + 8, r.off / 512);
        ram.store32(hdr + 12, 0);
        const buf = BUFS + r.i * SLOT;
        if (write) {
          const data = new Uint8Array(r.len).map(() => Math.floor(rnd() * 256));
          ram.bytes.set(data, buf - BASE);
          model.set(data, r.off);
        }
        const d0 = 3 * r.i;
        const put = (k: number, addr: number, len: number, flags: number, next: number): void => {
          const d = DESC + 16 * k;
          ram.store32(d, addr);
          ram.store32(d + 4, 0);
          ram.store32(d + 8, len);
          ram.store16(d + 12, flags);
          ram.store16(d + 14, next);
        };
        put(d0, hdr, 16, 1, d0 + 1);
        put(d0 + 1, buf, r.len, write ? 1 : 3, d0 + 2);
        put(d0 + 2, STATUS + r.i, 1, 2, 0);
        ram.store16(AVAIL + 4 + 2 * (avail % Q), d0);
        avail = (avail + 1) & 0xffff;
      }
      ram.store16(AVAIL + 2, avail);
      w(0x50, 0);
      while (((ram.load16(USED + 2) - usedSeen) & 0xffff) < 16) await new Promise<void>((r) => (wake = r));
      wake = null;
      usedSeen = ram.load16(USED + 2);
      w(0x64, dev.read(0x60, 4));
      for (const r of reqs) {
        expect(ram.bytes[STATUS + r.i - BASE]).toBe(0);
        if (!write) expect(Buffer.compare(Buffer.from(ram.bytes.subarray(BUFS + r.i * SLOT - BASE, BUFS + r.i * SLOT - BASE + r.len)), Buffer.from(model.subarray(r.off, r.off + r.len)))).toBe(0);
      }
    }
    expect(dev.read(0x70, 4) & 0x40).toBe(0);
    const st = blockstatsInfo(blk).stats;
    expect(Number(st.rd_operations) + Number(st.wr_operations)).toBe(3200);
    expect(st.rd_latency_histogram!.bins.reduce((a: number, b) => a + Number(b), 0)).toBe(st.rd_operations);
    await blk.flush();
    await blk.close();
    writeFileSync(t.path("model.raw"), model);
    expect(qemuImg(["check", top]).status).toBe(0);
    expect(qemuImg(["compare", "-f", "qcow2", "-F", "raw", top, t.path("model.raw")]).stdout).toContain("Images are identical.");
  }, 60_000);
});
