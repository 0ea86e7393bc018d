// Host offsets at and past 2 GiB (and 4 GiB): every offset, L1/L2 and refcount computation is
// exact, so check, map, bench and guest I/O work on sparse multi-GiB images made by qemu-img,
// and qemu-img agrees with what minivm wrote.
import { execFileSync } from "node:child_process";
import { truncateSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { openImage } from "../../src/block/image.js";
import { entryOffset } from "../../src/block/qcow2-format.js";
import { interop, qemuImg, qemuIo, useImg } from "./helpers.js";

const { pool, t, img } = useImg();

function qemuIoOut(file: string, cmd: string): string {
  return execFileSync("qemu-io", ["-f", "qcow2", "-c", cmd, file], { encoding: "utf8" });
}

const G = 1024 * 1024 * 1024;

describe("entry offsets", () => {
  it("decodes an L2 entry's host offset at and above 2 GiB and 4 GiB without sign errors", () => {
    expect(entryOffset(0x80000000, 0x80010000)).toBe(0x80010000);
    expect(entryOffset(0x80000001, 0xfffffe00)).toBe(0x1fffffe00);
    expect(entryOffset(0x00ffffff, 0xffffffff)).toBe(2 ** 56 - 512);
  });
});

describe.runIf(interop)("images with host offsets past 2 GiB", () => {
  it("check, map, read and write an image preallocated by qemu-img with data at 5 GiB", async () => {
    const f = t.path("big.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", f, "6G"]);
    qemuIo(f, "qcow2", "write -P 0x5c 5G 64k");
    const c = await img("check", f);
    expect(c.stderr).toBe("");
    expect(c.stdout).toContain("No errors were found on the image.");
    expect(c.status).toBe(0);
    const q = qemuImg(["map", "--output=json", f]);
    const m = await img("map", "--output=json", f);
    expect(m.status).toBe(0);
    // minivm cannot see holes in the file (no SEEK_DATA in Node), so QEMU's zero flag for
    // preallocated space differs; where QEMU has data, minivm maps it to the same host offset.
    type Ext = { start: number; length: number; data: boolean; zero: boolean; offset?: number };
    const mine = JSON.parse(m.stdout) as Ext[];
    const written = (JSON.parse(q.stdout) as Ext[]).filter((e) => e.data && !e.zero);
    expect(written.length).toBe(1);
    for (const e of written) {
      const hit = mine.find((x) => x.start <= e.start && e.start < x.start + x.length)!;
      expect(hit.offset! + (e.start - hit.start)).toBe(e.offset);
    }
    const b = await img("bench", "-q", "-c", "64", "-o", "2900M", f);
    expect(b.stderr).toBe("");
    expect(b.status).toBe(0);

    const d = await openImage(f, { pool });
    expect(Buffer.from(await d.read(5 * G, 65536)).every((x) => x === 0x5c)).toBe(true);
    await d.write(5 * G + 4096, new Uint8Array(8192).fill(0xa7));
    await d.write(2 * G - 512, new Uint8Array(1024).fill(0x31));
    await d.close();
    const r = qemuImg(["check", f]);
    expect(r.stdout).toContain("No errors were found on the image.");
    expect(qemuIoOut(f, "read -P 0xa7 5368713216 8k")).not.toMatch(/failed/i);
    expect(qemuIoOut(f, "read -P 0x31 2147483136 1k")).not.toMatch(/failed/i);
    expect(qemuIoOut(f, "read -P 0x5c 5G 4k")).not.toMatch(/failed/i);
  });

  it("allocates new clusters past 4 GiB of file and qemu-img reads them back", async () => {
    const f = t.path("grow.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", f, "8G"]);
    // Data at the far end of a 4.5 GiB file makes minivm's appends land past 4 GiB.
    qemuIo(f, "qcow2", "write -P 0x11 0 64k");
    truncateSync(f, 4.5 * G);
    const d = await openImage(f, { pool });
    await d.write(7 * G, new Uint8Array(3 * 65536).fill(0x22));
    await d.write(3 * G + 100, new Uint8Array(300).fill(0x33));
    await d.flush();
    expect(Buffer.from(await d.read(7 * G, 3 * 65536)).every((x) => x === 0x22)).toBe(true);
    await d.close();
    const r = qemuImg(["check", f]);
    expect(r.stdout + r.stderr).toMatch(/No errors were found on the image|leaked clusters were found/);
    expect(r.stderr).not.toMatch(/ERROR/);
    const map = qemuImg(["map", "--output=json", f]).stdout;
    expect(map).toMatch(/"offset": 48\d{8}\b/);
    expect(qemuIoOut(f, "read -P 0x22 7G 192k")).not.toMatch(/failed/i);
    expect(qemuIoOut(f, "read -P 0x33 3221225572 300")).not.toMatch(/failed/i);
  });
});
