// A generated corpus of damaged images: every one must open with an error or read, write and
// check without taking the process down; named hostile headers get QEMU's messages.
import { copyFileSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createImage } from "../../src/block/create.js";
import type { BlockDriver } from "../../src/block/driver.js";
import { openImage } from "../../src/block/image.js";
import { IoPool } from "../../src/block/io-pool.js";
import { checkQcow2 } from "../../src/block/qcow2-check.js";
import { Qcow2Driver } from "../../src/block/qcow2.js";
import { rng, tempDir } from "./helpers.js";

const pool = new IoPool();
/** Open descriptors of this process (Linux), to prove no path leaves a file open. */
const openFds = (): number => (process.platform === "linux" ? readdirSync("/proc/self/fd").length : 0);
const t = tempDir();
afterAll(async () => {
  await pool.close();
  t.cleanup();
});

const seeds: string[] = [];
beforeAll(async () => {
  const specs: Array<{ name: string; cs: number; compat?: "0.10"; backing?: string }> = [
    { name: "v3-64k", cs: 65536 },
    { name: "v3-512", cs: 512 },
    { name: "v2-4k", cs: 4096, compat: "0.10" },
    { name: "v3-4k-backed", cs: 4096, backing: "v3-512.qcow2" },
  ];
  for (const s of specs) {
    const f = t.path(`${s.name}.qcow2`);
    await createImage({ filename: f, format: "qcow2", pool, size: 2 << 20, clusterSize: s.cs, compat: s.compat, backingFile: s.backing, backingFormat: s.backing ? "qcow2" : undefined });
    const d = await openImage(f, { pool });
    for (let i = 0; i < 40; i++) await d.write((i * 51_001) % ((2 << 20) - 3000), new Uint8Array(3000).fill(i + 1));
    await d.writeZeroes(0, s.cs, false);
    await d.close();
    seeds.push(f);
  }
});

/** Opens, reads everywhere (bounded), writes, checks: any failure must be an ordinary Error. */
async function exercise(file: string): Promise<string> {
  const outcomes: string[] = [];
  const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
      outcomes.push(`${name}:ok`);
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      outcomes.push(`${name}:err`);
    }
  };
  let ro: BlockDriver | null = null;
  await step("open-ro", async () => (ro = await openImage(file, { pool, readOnly: true })));
  if (ro) {
    const d: BlockDriver = ro;
    await step("read", async () => {
      const size = Math.min(d.size, 4 << 20);
      for (let off = 0; off < size; off += 256 * 1024) await d.read(off, Math.min(256 * 1024, size - off));
      if (d.size > size) await d.read(d.size - 4096, 4096);
    });
    await step("close", () => d.close());
  }
  let rw: BlockDriver | null = null;
  await step("open-rw", async () => (rw = await openImage(file, { pool })));
  if (rw) {
    const d: BlockDriver = rw;
    await step("write", async () => {
      for (let i = 0; i < 8; i++) await d.write(Math.min(d.size - 5000, i * 70_000), new Uint8Array(5000).fill(0xee));
      await d.flush();
    });
    await step("close", () => d.close());
  }
  let ck: BlockDriver | null = null;
  await step("open-check", async () => (ck = await openImage(file, { pool, readOnly: false, forCheck: true })));
  if (ck) {
    const d: BlockDriver = ck;
    if (d instanceof Qcow2Driver) await step("check-repair", () => checkQcow2(d, { repair: "all" }));
    await step("close", () => d.close());
  }
  return outcomes.join(" ");
}

describe("corrupt and hostile qcow2 images", () => {
  it("survives 240 random mutations of valid images", async () => {
    const rnd = rng(2024);
    const results = new Map<string, number>();
    for (let n = 0; n < 240; n++) {
      const src = seeds[n % seeds.length];
      const f = t.path(`mut-${n}.qcow2`);
      copyFileSync(src, f);
      const img = readFileSync(f);
      const cs = 2 ** img.readUInt32BE(20);
      const kind = n % 6;
      if (kind === 0) {
        // flip bytes in the header
        for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) img[Math.floor(rnd() * 112)] ^= 1 << Math.floor(rnd() * 8);
      } else if (kind === 1 || kind === 2) {
        // a random 64-bit value into a table entry: L1 (kind 1) or refcount table (kind 2)
        const table = kind === 1 ? Number(img.readBigUInt64BE(40)) : Number(img.readBigUInt64BE(48));
        const at = table + 8 * Math.floor(rnd() * 4);
        const v = rnd() < 0.5 ? BigInt(Math.floor(rnd() * img.length)) : BigInt.asUintN(64, BigInt(Math.floor(rnd() * 2 ** 52)) << BigInt(Math.floor(rnd() * 12)));
        if (at + 8 <= img.length) img.writeBigUInt64BE(v, at);
      } else if (kind === 3) {
        // scribble over a random metadata-sized run anywhere past the header
        const at = cs + Math.floor(rnd() * Math.max(1, img.length - cs - 64));
        for (let k = 0; k < 64; k++) img[at + k] = Math.floor(rnd() * 256);
      } else if (kind === 4) {
        // point an L2 entry somewhere odd (unaligned, past EOF, compressed bit, into metadata)
        const l1 = Number(img.readBigUInt64BE(40));
        const l2 = Number(img.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
        const choices = [0x8000000000000000n | 0x200n, 0x8000000000000000n | BigInt(cs), 0x8000000000000000n | (1n << 50n), 0x4000000000000000n | 0x12345n, BigInt(cs) * 3n | 0x8000000000000000n, 0xffffffffffffffffn];
        if (l2 && l2 + cs <= img.length) img.writeBigUInt64BE(choices[Math.floor(rnd() * choices.length)], l2 + 8 * Math.floor(rnd() * 8));
      }
      writeFileSync(f, img);
      if (kind === 5) truncateSync(f, Math.floor(rnd() * img.length));
      const before = openFds();
      const out = await exercise(f);
      // Whatever failed, every file the exercise opened is closed again.
      expect({ n, open: openFds() }).toEqual({ n, open: before });
      results.set(out, (results.get(out) ?? 0) + 1);
    }
    // Both refusals and successful opens occur: the corpus is not trivially rejected.
    const all = [...results.keys()].join(" ");
    expect(all).toContain("open-ro:err");
    expect(all).toContain("read:ok");
  }, 120_000);

  const hostile: Array<[string, (b: Buffer) => void, RegExp]> = [
    ["a bad magic", (b) => b.writeUInt32BE(0x12345678, 0), /^Image is not in qcow2 format$/],
    ["version 4", (b) => b.writeUInt32BE(4, 4), /^Unsupported qcow2 version 4$/],
    ["cluster_bits 30", (b) => b.writeUInt32BE(30, 20), /^Unsupported cluster size: 2\^30$/],
    ["refcount_order 7", (b) => b.writeUInt32BE(7, 96), /Reference count entry width too large; may not exceed 64 bits/],
    ["a header_length of 50", (b) => b.writeUInt32BE(50, 100), /^qcow2 header too short$/],
    ["an absurd size", (b) => b.writeBigUInt64BE(0x7fffffffffffffffn, 24), /^Image is too big$/],
    ["an L1 table too small", (b) => b.writeUInt32BE(0, 36), /^L1 table is too small$/],
    ["an L1 table too large", (b) => b.writeUInt32BE(0x10000000, 36), /^Active L1 table too large$/],
    ["an unaligned L1 offset", (b) => b.writeBigUInt64BE(0x30001n, 40), /^Active L1 table offset invalid$/],
    ["an unaligned refcount table", (b) => b.writeBigUInt64BE(0x10008n, 48), /^Reference count table offset invalid$/],
    ["no refcount table", (b) => b.writeUInt32BE(0, 56), /^Image does not contain a reference count table$/],
    ["an unknown incompatible feature", (b) => b.writeUInt32BE(0x100, 76), /^Unsupported qcow2 feature\(s\): Unknown incompatible feature: 100$/],
    ["the extended L2 feature", (b) => b.writeUInt32BE(0x10, 76), /^Unsupported qcow2 feature\(s\): extended L2 entries$/],
    ["zstd compression", (b) => { b.writeUInt32BE(0x8, 76); b[104] = 1; }, /^qcow2: unknown compression type: 1$/],
    ["a backing name offset beyond the cluster", (b) => b.writeBigUInt64BE(0x20000n, 8), /^Invalid backing file offset$/],
    ["a backing name too long", (b) => { b.writeBigUInt64BE(0x1000n, 8); b.writeUInt32BE(2000, 16); }, /^Backing file name too long$/],
  ];
  for (const [what, mutate, msg] of hostile) {
    it(`refuses ${what} with QEMU's message`, async () => {
      const f = t.path(`hostile-${what.replace(/\W/g, "_")}.qcow2`);
      copyFileSync(seeds[0], f);
      const b = readFileSync(f);
      mutate(b);
      writeFileSync(f, b);
      await expect(openImage(f, { pool, readOnly: true, format: "qcow2" })).rejects.toThrow(msg);
    });
  }

  it("refuses a corrupt-flagged image read-write but opens it read-only", async () => {
    const f = t.path("flagged.qcow2");
    copyFileSync(seeds[0], f);
    const b = readFileSync(f);
    b.writeUInt32BE(2, 76);
    writeFileSync(f, b);
    await expect(openImage(f, { pool })).rejects.toThrow("qcow2: Image is corrupt; cannot be opened read/write");
    const d = await openImage(f, { pool, readOnly: true });
    await d.close();
  });

  it("marks the image corrupt and stops writing when an L2 entry points into the header", async () => {
    const f = t.path("overlap.qcow2");
    copyFileSync(seeds[0], f);
    const b = readFileSync(f);
    const cs = 2 ** b.readUInt32BE(20);
    const l1 = Number(b.readBigUInt64BE(40));
    const l2 = Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
    b.writeBigUInt64BE(0x8000000000000000n, l2 + 8 * 5); // cluster 5 -> host offset 0 (the header), COPIED
    b.writeBigUInt64BE(0x8000000000000000n | BigInt(l1), l2 + 8 * 6); // cluster 6 -> the L1 table
    writeFileSync(f, b);
    const d = await openImage(f, { pool });
    await expect(d.write(6 * cs, new Uint8Array(512))).rejects.toThrow(/^qcow2: Marking image as corrupt: Preventing invalid write on metadata \(overlaps with active L1 table\)/);
    await expect(d.write(0, new Uint8Array(512))).rejects.toThrow(/no further I\/O/);
    await d.close();
    expect(readFileSync(f).readUInt32BE(76) & 2).toBe(2);
    await expect(openImage(f, { pool })).rejects.toThrow("cannot be opened read/write");
  });

  it("refuses a backing chain that loops", async () => {
    const a = t.path("loop-a.qcow2");
    const b = t.path("loop-b.qcow2");
    await createImage({ filename: a, format: "qcow2", pool, size: 1 << 20 });
    await createImage({ filename: b, format: "qcow2", pool, size: 1 << 20, backingFile: "loop-a.qcow2", backingFormat: "qcow2" });
    // now make a point at b (same name length trick: rewrite a's header with a backing name)
    const { buildHeader, parseHeader } = await import("../../src/block/qcow2-format.js");
    const raw = readFileSync(a);
    const h = parseHeader(raw);
    const hdr = buildHeader(h, { backingFile: "loop-b.qcow2", backingFormat: "qcow2" }, 65536);
    raw.set(hdr, 0);
    writeFileSync(a, raw);
    await expect(openImage(b, { pool, readOnly: true })).rejects.toThrow(/loops back/);
  });
});
