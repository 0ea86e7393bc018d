import { afterAll, describe, expect, it } from "vitest";
import { createImage } from "../../src/block/create.js";
import { openImage } from "../../src/block/image.js";
import { IoPool } from "../../src/block/io-pool.js";
import { interop, qemuImg, tempDir } from "./helpers.js";

const pool = new IoPool();
const t = tempDir();
afterAll(async () => {
  await pool.close();
  t.cleanup();
});

describe.runIf(interop)("qcow2 written by minivm", () => {
  it("creates the same bytes as qemu-img for a fresh 64M image", async () => {
    await createImage({ filename: t.path("m.qcow2"), format: "qcow2", size: 64 << 20, pool });
    qemuImg(["create", "-q", "-f", "qcow2", t.path("q.qcow2"), "64M"]);
    const { readFileSync } = await import("node:fs");
    expect(Buffer.compare(readFileSync(t.path("m.qcow2")), readFileSync(t.path("q.qcow2")))).toBe(0);
  });

  it("writes across clusters and qemu-img check is clean and compare identical", async () => {
    await createImage({ filename: t.path("w.qcow2"), format: "qcow2", size: 8 << 20, clusterSize: 4096, pool });
    await createImage({ filename: t.path("w.raw"), format: "raw", size: 8 << 20, pool });
    const q = await openImage(t.path("w.qcow2"), { pool });
    const r = await openImage(t.path("w.raw"), { pool });
    for (let i = 0; i < 200; i++) {
      const off = (i * 7919 * 13) % ((8 << 20) - 10000);
      const data = new Uint8Array(5000 + (i % 3000)).fill(i & 0xff);
      await q.write(off, data);
      await r.write(off, data);
    }
    expect(Buffer.compare(Buffer.from(await q.read(0, 8 << 20)), Buffer.from(await r.read(0, 8 << 20)))).toBe(0);
    await q.close();
    await r.close();
    const c = qemuImg(["check", t.path("w.qcow2")]);
    expect(c.stderr + c.stdout).toContain("No errors were found");
    expect(c.status).toBe(0);
    const cmp = qemuImg(["compare", "-f", "qcow2", "-F", "raw", t.path("w.qcow2"), t.path("w.raw")]);
    expect(cmp.stdout).toContain("Images are identical.");
  });
});
