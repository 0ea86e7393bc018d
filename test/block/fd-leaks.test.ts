// Every FileHandle the block layer opens is closed on every path: failed opens, corrupt
// images whose close cannot write back, and the vitest guard that catches any it missed.
import { readdirSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { afterAll, describe, expect, it } from "vitest";
import { createImage } from "../../src/block/create.js";
import { openImage } from "../../src/block/image.js";
import { IoPool } from "../../src/block/io-pool.js";
import { collectAndDrain, fdLeaks, onWarning } from "../helpers/fd-leak-guard.js";
import { tempDir } from "./helpers.js";

const pool = new IoPool();
const t = tempDir();
afterAll(async () => {
  await pool.close();
  t.cleanup();
});

const openFds = (): number => readdirSync("/proc/self/fd").length;
const linux = process.platform === "linux";

describe("FileHandles", () => {
  it("the test guard sees a FileHandle left to the garbage collector", async () => {
    expect((globalThis as { gc?: unknown }).gc).toBeTypeOf("function");
    const f = t.path("dropped.raw");
    writeFileSync(f, "x");
    // Node's own printer is detached meanwhile: this leak is made on purpose and must not
    // show up in the test output as if it were a real one.
    const printers = process.listeners("warning").filter((l) => l !== onWarning);
    for (const l of printers) process.removeListener("warning", l);
    try {
      await (async () => {
        await open(f, "r");
      })();
      await collectAndDrain();
      expect(fdLeaks.length).toBe(1);
    } finally {
      // Let the guard not fail the file for it either.
      fdLeaks.length = 0;
      await collectAndDrain();
      for (const l of printers) process.on("warning", l);
    }
  });

  it.runIf(linux)("a qcow2 image whose write-back fails on close still releases its file and backing chain", async () => {
    const base = t.path("base.qcow2");
    await createImage({ filename: base, format: "qcow2", pool, size: 1 << 20, clusterSize: 4096 });
    const top = t.path("top.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, clusterSize: 4096, backingFile: "base.qcow2", backingFormat: "qcow2" });
    // A pool whose writes start failing (EIO, a full disk) once the image is open.
    let broken = false;
    const failing = Object.create(pool) as IoPool;
    failing.pwrite = (fd, offset, data) => (broken ? Promise.reject(new Error("EIO")) : pool.pwrite(fd, offset, data));
    failing.fdatasync = (fd) => (broken ? Promise.reject(new Error("EIO")) : pool.fdatasync(fd));
    const before = openFds();
    const d = await openImage(top, { pool: failing });
    expect(openFds()).toBe(before + 2);
    await d.write(0, new Uint8Array(4096).fill(1)).catch(() => undefined);
    broken = true;
    await expect(d.close()).rejects.toThrow("EIO");
    expect(openFds()).toBe(before);
  });

  it.runIf(linux)("a failed open leaves no file open: missing backing file, bad header, unknown format", async () => {
    const gone = t.path("gone.raw");
    await createImage({ filename: gone, format: "raw", pool, size: 1 << 20 });
    const orphan = t.path("orphan.qcow2");
    await createImage({ filename: orphan, format: "qcow2", pool, backingFile: "gone.raw", backingFormat: "raw" });
    rmSync(gone);
    const bad = t.path("bad.qcow2");
    await createImage({ filename: bad, format: "qcow2", pool, size: 1 << 20 });
    const h = readFileSync(bad);
    h.writeUInt32BE(99, 4);
    writeFileSync(bad, h);
    const before = openFds();
    await expect(openImage(orphan, { pool })).rejects.toThrow("Could not open backing file");
    await expect(openImage(bad, { pool })).rejects.toThrow();
    await expect(openImage(bad, { pool, format: "vmdk" })).rejects.toThrow("Unknown driver");
    await expect(openImage(t.path("nothing.raw"), { pool })).rejects.toThrow("No such file");
    expect(openFds()).toBe(before);
  });
});
