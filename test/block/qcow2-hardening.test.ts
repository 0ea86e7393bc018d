// Hostile images that minivm used to get wrong, side by side with qemu-img: unknown
// incompatible feature bits in the high word, L2 entries with reserved bits, garbage in the
// refcount table, and a guest write that meets corruption (qcow2_signal_corruption).
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { openImage } from "../../src/block/image.js";
import { interop, qemuImg, qemuIo, useImg } from "./helpers.js";

const { pool, t, img } = useImg();

function poke(file: string, offset: number, bytes: number[]): void {
  const fd = openSync(file, "r+");
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}

const be64 = (file: string, off: number): number => Number(readFileSync(file).readBigUInt64BE(off));

/** Both tools from the temp dir, so file names print the same; qemu-img's prefix made minivm's. */
async function side(args: string[]): Promise<{ m: { status: number; stdout: string; stderr: string }; q: { status: number; stdout: string; stderr: string } }> {
  const cwd = process.cwd();
  process.chdir(t.dir);
  try {
    const q = qemuImg(args);
    const m = await img(...args);
    return { m, q: { ...q, stderr: q.stderr.replaceAll("qemu-img: ", "minivm img: ") } };
  } finally {
    process.chdir(cwd);
  }
}

describe.runIf(interop)("hostile qcow2 images as qemu-img sees them", () => {
  it("refuses unknown incompatible feature bits 31 to 63 with QEMU's exact words", async () => {
    for (const [bytes, hex] of [
      [[0, 0, 1, 0, 0, 0, 0, 0], "10000000000"],
      [[0, 0, 0, 0, 0x80, 0, 0, 0], "80000000"],
      [[0x80, 0, 1, 0, 0x80, 0, 0, 0x20], "8000010080000020"],
    ] as Array<[number[], string]>) {
      qemuImg(["create", "-q", "-f", "qcow2", t.path("feat.qcow2"), "1M"]);
      poke(t.path("feat.qcow2"), 72, bytes);
      for (const cmd of [["info", "feat.qcow2"], ["check", "feat.qcow2"]]) {
        const { m, q } = await side(cmd);
        expect(q.stderr).toContain(`Unknown incompatible feature: ${hex}`);
        expect(m.stderr).toBe(q.stderr);
        expect(m.status).toBe(q.status);
      }
      await expect(openImage(t.path("feat.qcow2"), { pool })).rejects.toThrow(`Unsupported qcow2 feature(s): Unknown incompatible feature: ${hex}`);
    }
  });

  it("prefixes open errors with Could not open 'FILE': as qemu-img does", async () => {
    qemuImg(["create", "-q", "-f", "qcow2", t.path("v9.qcow2"), "1M"]);
    poke(t.path("v9.qcow2"), 4, [0, 0, 0, 9]);
    for (const cmd of [["info", "v9.qcow2"], ["check", "v9.qcow2"], ["map", "v9.qcow2"], ["info", "missing.qcow2"], ["convert", "-O", "raw", "v9.qcow2", "o.raw"]]) {
      const { m, q } = await side(cmd);
      expect(m.stderr, cmd.join(" ")).toBe(q.stderr);
      expect(m.status, cmd.join(" ")).toBe(q.status);
    }
  });

  it("check reports L2 entries with reserved bits set, with qemu-img's text and exit code", async () => {
    const f = t.path("res.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", f, "1M"]);
    qemuIo(f, "qcow2", "write -P 7 0 64k");
    const l1 = be64(f, 40);
    const l2 = be64(f, l1) & 0x00fffffffffffe00;
    poke(f, l2 + 7, [readFileSync(f)[l2 + 7] | 0x02]); // bit 1: reserved in a standard L2 entry
    const { m, q } = await side(["check", "res.qcow2"]);
    expect(q.stderr).toContain("reserved bits set");
    expect(m.stderr).toBe(q.stderr);
    expect(m.stdout).toBe(q.stdout);
    expect(m.status).toBe(q.status);
  });

  it("check reports garbage in a refcount table entry as qemu-img does", async () => {
    for (const garbage of [[0x00, 0x00, 0x00, 0x7f, 0x12, 0x34, 0x56, 0x00], [0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef], [0, 0, 0, 0, 0, 0, 0x12, 0x34]]) {
      const f = t.path("rt.qcow2");
      qemuImg(["create", "-q", "-f", "qcow2", f, "1M"]);
      qemuIo(f, "qcow2", "write -P 7 0 64k");
      poke(f, be64(f, 48), garbage);
      const { m, q } = await side(["check", "rt.qcow2"]);
      expect(m.stderr).toBe(q.stderr);
      expect(m.stdout).toBe(q.stdout);
      expect(m.status).toBe(q.status);
    }
  });

  it("a guest write that meets a corrupt L2 entry prints QEMU's Marking image as corrupt and sets the corrupt bit", async () => {
    const f = t.path("wc.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", f, "1M"]);
    qemuIo(f, "qcow2", "write -P 7 0 64k");
    const l1 = be64(f, 40);
    const l2 = be64(f, l1) & 0x00fffffffffffe00;
    poke(f, l2 + 6, [0x02, 0x00]); // the entry now points 512 bytes into a cluster: unaligned
    const errs: string[] = [];
    const d = await openImage(f, { pool, onCorruption: (msg: string) => errs.push(msg) });
    await expect(d.write(512, new Uint8Array(512).fill(1))).rejects.toThrow();
    await d.close().catch(() => undefined);
    expect(errs.join("")).toMatch(/^qcow2: Marking image as corrupt: Data cluster offset 0x50200 unaligned \(guest offset: 0x200\); further corruption events will be suppressed$/);
    expect(readFileSync(f)[79] & 2).toBe(2);
    expect(qemuImg(["info", f]).stdout).toContain("corrupt: true");
  });
});

describe("img create at the edges, as qemu-img", () => {
  it("refuses a qcow2 too large for its L1 table after the Formatting line, and creates nothing", async () => {
    const r = await img("create", "-f", "qcow2", t.path("huge.qcow2"), "1E");
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`Formatting '${t.path("huge.qcow2")}', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=1152921504606846976 lazy_refcounts=off refcount_bits=16`);
    expect(r.stderr).toContain(`${t.path("huge.qcow2")}: The image size is too large for file format 'qcow2' (try using a larger cluster size)`);
    expect(existsSync(t.path("huge.qcow2"))).toBe(false);
  });

  it("creates a raw image of whole sectors, as file-posix does", async () => {
    const r = await img("create", "-f", "raw", t.path("s8.img"), "8");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("fmt=raw size=8");
    expect(statSync(t.path("s8.img")).size).toBe(512);
  });
});
