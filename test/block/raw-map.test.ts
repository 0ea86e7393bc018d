// `img map` and `img convert` on a sparse raw file see its holes (SEEK_DATA/SEEK_HOLE), as
// qemu-img does, instead of calling the whole file data.
import { closeSync, ftruncateSync, openSync, statSync, writeSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { findAllocation } from "../../src/block/seek-hole.js";
import { interop, qemuImg, useImg } from "./helpers.js";

const { t, img } = useImg();

/** 64 MiB, with data at 8 MiB (12 KiB) and at 62.5 MiB (64 KiB), holes elsewhere. */
function sparseFile(name: string): string {
  const f = t.path(name);
  const fd = openSync(f, "w");
  ftruncateSync(fd, 64 << 20);
  writeSync(fd, Buffer.alloc(12288, 0x5a), 0, 12288, 8 << 20);
  writeSync(fd, Buffer.alloc(65536, 0xa5), 0, 65536, 65536000);
  closeSync(fd);
  return f;
}

describe("holes in raw files", () => {
  it("findAllocation walks data and holes as lseek reports them", async () => {
    const f = sparseFile("walk.raw");
    const fd = openSync(f, "r");
    try {
      const runs: Array<[boolean, number]> = [];
      for (let pos = 0; pos < 64 << 20; ) {
        const a = await findAllocation(fd, pos, 1 << 30, 64 << 20);
        expect(a).not.toBeNull();
        if (a === null) break;
        runs.push([a.data, a.length]);
        pos += a.length;
      }
      expect(runs).toEqual([
        [false, 8 << 20],
        [true, 12288],
        [false, 65536000 - (8 << 20) - 12288],
        [true, 65536],
        [false, (64 << 20) - 65536000 - 65536],
      ]);
    } finally {
      closeSync(fd);
    }
  });

  it("img map shows the holes", async () => {
    const f = sparseFile("map.raw");
    const r = await img("map", "-f", "raw", f);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n").slice(1)).toEqual([expect.stringMatching(/^0x800000\s+0x3000\s+0x800000\s/), expect.stringMatching(/^0x3e80000\s+0x10000\s+0x3e80000\s/)]);
  });

  it.runIf(interop)("img map prints what qemu-img map prints, in both formats", async () => {
    const f = sparseFile("same.raw");
    for (const extra of [["--output=json"], []]) {
      const ours = await img("map", ...extra, "-f", "raw", f);
      const theirs = qemuImg(["map", ...extra, "-f", "raw", f]);
      expect(ours.stdout).toBe(theirs.stdout);
    }
  });

  it("img convert of a sparse raw file stays sparse", async () => {
    const f = sparseFile("conv.raw");
    const out = t.path("conv-out.raw");
    expect((await img("convert", "-f", "raw", "-O", "raw", f, out)).status).toBe(0);
    // Two extents of data: far less than the 64 MiB a dense copy would take.
    expect(statSync(out).blocks * 512).toBeLessThan(4 << 20);
  });
});
