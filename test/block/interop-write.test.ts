// minivm writes; the real qemu-img judges: check must be clean and compare must find the
// image identical to a raw file that received the same writes.
import { copyFileSync, readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { createImage } from "../../src/block/create.js";
import { openImage } from "../../src/block/image.js";
import { IoPool } from "../../src/block/io-pool.js";
import { imgRun } from "../../src/cli/img.js";
import { interop, qemuImg, qemuIo, rng, tempDir } from "./helpers.js";

const pool = new IoPool();
const t = tempDir();
afterAll(async () => {
  await pool.close();
  t.cleanup();
});

const SIZE = 8 * 1024 * 1024;

function expectClean(file: string): void {
  const c = qemuImg(["check", file]);
  expect(c.stdout + c.stderr, c.stderr).toContain("No errors were found on the image.");
  expect(c.status).toBe(0);
}

function expectIdentical(a: string, fa: string, b: string, fb: string): void {
  const r = qemuImg(["compare", "-f", fa, "-F", fb, a, b]);
  expect(r.stdout).toContain("Images are identical.");
  expect(r.status).toBe(0);
}

/** `n` random writes (1 B to 3 clusters, anywhere) plus some zero writes and discards, mirrored into a raw reference. */
async function randomWrites(top: string, ref: string, n: number, seed: number, cs: number): Promise<void> {
  const q = await openImage(top, { pool });
  const r = await openImage(ref, { pool, format: "raw" });
  const rnd = rng(seed);
  let inflight: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(rnd() * 3 * cs);
    const off = Math.floor(rnd() * (SIZE - len));
    const kind = rnd();
    if (kind < 0.03) {
      // whole clusters zeroed (v3: zero clusters)
      const o = Math.floor(off / cs) * cs;
      const l = Math.min(SIZE - o, cs * (1 + Math.floor(rnd() * 3)));
      await Promise.all(inflight);
      inflight = [];
      await q.writeZeroes(o, l, rnd() < 0.5);
      await r.writeZeroes(o, l, false);
      continue;
    }
    const data = new Uint8Array(len);
    const fillByte = Math.floor(rnd() * 256);
    for (let k = 0; k < len; k += 97) data[k] = fillByte ^ (k & 0xff);
    // Requests that do not overlap may run concurrently, as a guest's would.
    await Promise.all(inflight);
    inflight = [q.write(off, data), r.write(off, data)];
    if (i % 8 !== 0) {
      await Promise.all(inflight);
      inflight = [];
    }
  }
  await Promise.all(inflight);
  await q.flush();
  await q.close();
  await r.close();
}

describe.runIf(interop)("images written by minivm pass qemu-img check and compare", () => {
  it("10 000 random writes over a raw <- qcow2 <- qcow2 chain with 4 KiB clusters", async () => {
    const base = t.path("base.raw");
    qemuImg(["create", "-q", "-f", "raw", base, String(SIZE)]);
    qemuIo(base, "raw", "write -P 0xab 0 5M");
    const mid = t.path("mid.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-b", "base.raw", "-F", "raw", mid]);
    qemuIo(mid, "qcow2", "write -P 0xcd 1M 2M");
    const top = t.path("top.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, clusterSize: 4096, backingFile: "mid.qcow2", backingFormat: "qcow2" });
    const ref = t.path("ref.raw");
    qemuImg(["convert", "-f", "qcow2", "-O", "raw", mid, ref]);
    await randomWrites(top, ref, 10_000, 1, 4096);
    expectClean(top);
    expectIdentical(top, "qcow2", ref, "raw");
  }, 120_000);

  it("grows the refcount table with 512-byte clusters (v3) and stays clean", async () => {
    const top = t.path("small.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, size: SIZE, clusterSize: 512 });
    const ref = t.path("small.raw");
    await createImage({ filename: ref, format: "raw", pool, size: SIZE });
    await randomWrites(top, ref, 3000, 2, 512);
    const q = await openImage(top, { pool });
    const r = await openImage(ref, { pool });
    for (let off = 0; off < SIZE; off += 1 << 20) {
      const d = new Uint8Array(1 << 20).fill(off >> 20 | 1);
      await q.write(off, d);
      await r.write(off, d);
    }
    await q.close();
    await r.close();
    await randomWrites(top, ref, 1000, 5, 512);
    // One 512-byte table cluster covers 64 refblocks of 128 KiB: the file outgrew it.
    expect(readFileSync(top).readUInt32BE(56)).toBeGreaterThan(1);
    expectClean(top);
    expectIdentical(top, "qcow2", ref, "raw");
  }, 60_000);

  it("writes compat=0.10 images over a backing file and qemu-img agrees", async () => {
    const base = t.path("v2base.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "compat=0.10", base, String(SIZE)]);
    qemuIo(base, "qcow2", "write -P 0x5a 0 3M");
    const top = t.path("v2top.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, compat: "0.10", clusterSize: 16384, backingFile: "v2base.qcow2", backingFormat: "qcow2" });
    const ref = t.path("v2ref.raw");
    qemuImg(["convert", "-O", "raw", base, ref]);
    await randomWrites(top, ref, 2000, 3, 16384);
    expectClean(top);
    expectIdentical(top, "qcow2", ref, "raw");
    expect(JSON.parse(qemuImg(["info", "--output=json", top]).stdout)["format-specific"].data.compat).toBe("0.10");
  }, 60_000);

  it("keeps lazy-refcount images clean after a clean close", async () => {
    const top = t.path("lazy.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, size: SIZE, lazyRefcounts: true, clusterSize: 4096 });
    const ref = t.path("lazy.raw");
    await createImage({ filename: ref, format: "raw", pool, size: SIZE });
    await randomWrites(top, ref, 1000, 4, 4096);
    expectClean(top);
    expect(JSON.parse(qemuImg(["info", "--output=json", top]).stdout)["dirty-flag"]).toBe(false);
    expectIdentical(top, "qcow2", ref, "raw");
  }, 60_000);

  it("overwrites qemu-img's compressed clusters by copy-on-write and frees them", async () => {
    const src = t.path("plain.raw");
    qemuImg(["create", "-q", "-f", "raw", src, "2M"]);
    qemuIo(src, "raw", "write -P 0x21 0 2M");
    const c = t.path("comp.qcow2");
    qemuImg(["convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", src, c]);
    const ref = t.path("comp-ref.raw");
    copyFileSync(src, ref);
    const q = await openImage(c, { pool });
    const r = await openImage(ref, { pool });
    for (let i = 0; i < 200; i++) {
      const d = new Uint8Array(700).fill(i);
      await q.write(i * 9000, d);
      await r.write(i * 9000, d);
    }
    await q.close();
    await r.close();
    expectClean(c);
    expectIdentical(c, "qcow2", ref, "raw");
  });

  it("convert -c writes compressed clusters that qemu-img checks clean and reads identically", async () => {
    const io = { out: () => undefined, err: () => undefined };
    const src = t.path("csrc.raw");
    qemuImg(["create", "-q", "-f", "raw", src, "3000000"]);
    qemuIo(src, "raw", "write -P 0x12 0 300k");
    qemuIo(src, "raw", "write -P 0x34 1M 100k");
    const noise = new Uint8Array(150_000).map((_, i) => (i * 2654435761) >>> 24);
    const r = await openImage(src, { pool, format: "raw" });
    await r.write(2_000_000, noise);
    await r.write(2_999_000, new Uint8Array(1000).fill(7));
    await r.close();
    for (const cs of ["512", "4096", "65536"]) {
      const out = t.path(`cconv-${cs}.qcow2`);
      expect(await imgRun(["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", `cluster_size=${cs}`, src, out], io, pool)).toBe(0);
      expectClean(out);
      expectIdentical(out, "qcow2", src, "raw");
      const info = qemuImg(["check", "--output=json", out]).stdout;
      expect(JSON.parse(info)["compressed-clusters"]).toBeGreaterThan(0);
      expect(await imgRun(["compare", out, src], io, pool)).toBe(0);
    }
  }, 60_000);

  it("converts qcow2 -> raw and raw -> qcow2 with minivm img convert", async () => {
    const io = { out: () => undefined, err: () => undefined };
    const top = t.path("top.qcow2");
    expect(await imgRun(["convert", "-f", "qcow2", "-O", "raw", top, t.path("conv.raw")], io, pool)).toBe(0);
    expectIdentical(top, "qcow2", t.path("conv.raw"), "raw");
    expect(await imgRun(["convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=8192", t.path("conv.raw"), t.path("conv.qcow2")], io, pool)).toBe(0);
    expectClean(t.path("conv.qcow2"));
    expectIdentical(t.path("conv.qcow2"), "qcow2", t.path("conv.raw"), "raw");
    // an odd size with data in the last partial 64 KiB piece, and a run longer than one write
    const odd = t.path("odd.raw");
    qemuImg(["create", "-q", "-f", "raw", odd, "5000000"]);
    qemuIo(odd, "raw", "write -P 0x77 4990000 10000");
    qemuIo(odd, "raw", "write -P 0x55 100000 3000000");
    for (const fmt of ["raw", "qcow2"]) {
      const o = t.path(`odd-out.${fmt}`);
      expect(await imgRun(["convert", "-O", fmt, odd, o], io, pool)).toBe(0);
      expectIdentical(o, fmt, odd, "raw");
    }
    expectClean(t.path("odd-out.qcow2"));
    // and qemu-img's conversion of minivm's image reads identically in minivm
    qemuImg(["convert", "-O", "qcow2", t.path("conv.qcow2"), t.path("back.qcow2")]);
    expect(await imgRun(["compare", t.path("back.qcow2"), t.path("conv.raw")], io, pool)).toBe(0);
  }, 60_000);
});
