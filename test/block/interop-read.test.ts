// Images that the real qemu-img and qemu-io make, in every variant minivm claims, read
// byte-identically in minivm.
import { afterAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/block/image.js";
import { IoPool } from "../../src/block/io-pool.js";
import { interop, qemuImg, qemuIo, qemuRead, tempDir } from "./helpers.js";

const pool = new IoPool();
const t = tempDir();
afterAll(async () => {
  await pool.close();
  t.cleanup();
});

const SIZE = 3 * 1024 * 1024 + 4096;

/** Data at cluster boundaries, a zero range, a discard, then more data over it. */
function fill(file: string, fmt: string, cs: number): void {
  const at = (off: number, len: number): number => Math.min(off, SIZE - len);
  qemuIo(file, fmt, `write -P 0x11 0 ${Math.min(cs + 1000, 100000)}`);
  qemuIo(file, fmt, `write -P 0x22 ${at(2 * cs - 700, 1500)} 1500`);
  qemuIo(file, fmt, `write -P 0x33 ${1024 * 1024 - 3000} 70000`);
  if (4 * cs + 2 * cs <= SIZE) qemuIo(file, fmt, `write -z ${4 * cs} ${2 * cs}`);
  else qemuIo(file, fmt, `write -z 0 ${cs}`);
  qemuIo(file, fmt, `write -P 0x44 ${SIZE - 5000} 5000`);
  if (9 * cs <= SIZE) qemuIo(file, fmt, `discard ${8 * cs} ${cs}`);
}

async function expectSame(file: string, fmt: string): Promise<void> {
  const want = qemuRead(file, fmt, t.path("expected.raw"));
  const d = await openImage(file, { pool, readOnly: true });
  try {
    const got = await d.read(0, d.size);
    expect(d.size).toBe(want.length);
    expect(Buffer.compare(Buffer.from(got), want)).toBe(0);
  } finally {
    await d.close();
  }
}

describe.runIf(interop)("reading qemu-img's images", () => {
  const variants: Array<[string, string]> = [
    ["v3 64k", "cluster_size=65536"],
    ["v2 64k", "compat=0.10"],
    ["v3 512", "cluster_size=512"],
    ["v2 512", "compat=0.10,cluster_size=512"],
    ["v3 4k", "cluster_size=4096"],
    ["v3 2M", "cluster_size=2097152"],
    ["v3 lazy refcounts", "lazy_refcounts=on"],
    ["v3 refcount_bits=1", "refcount_bits=1,cluster_size=4096"],
    ["v3 refcount_bits=8", "refcount_bits=8"],
    ["v3 refcount_bits=64", "refcount_bits=64,cluster_size=1024"],
  ];
  for (const [name, opts] of variants) {
    it(`reads a ${name} image`, async () => {
      const f = t.path(`${name.replace(/\W/g, "_")}.qcow2`);
      expect(qemuImg(["create", "-q", "-f", "qcow2", "-o", opts, f, String(SIZE)]).status).toBe(0);
      const cs = Number(/cluster_size=(\d+)/.exec(opts)?.[1] ?? 65536);
      fill(f, "qcow2", cs);
      await expectSame(f, "qcow2");
    });
  }

  it("reads through a three-deep chain of raw and qcow2 backing files", async () => {
    const base = t.path("base.raw");
    qemuImg(["create", "-q", "-f", "raw", base, String(SIZE - 100 * 1024)]);
    qemuIo(base, "raw", "write -P 0x55 0 2M");
    const mid = t.path("mid.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw", mid, String(SIZE)]);
    qemuIo(mid, "qcow2", "write -P 0x66 4000 10000");
    qemuIo(mid, "qcow2", "write -z 1M 64k");
    const top = t.path("top.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=512", "-b", mid, "-F", "qcow2", top]);
    qemuIo(top, "qcow2", "write -P 0x77 9000 3000");
    await expectSame(top, "qcow2");
  });

  it("reads compressed clusters (raw deflate) written by qemu-img convert -c", async () => {
    const src = t.path("c-src.raw");
    qemuImg(["create", "-q", "-f", "raw", src, "1M"]);
    qemuIo(src, "raw", "write -P 0x12 0 300k");
    qemuIo(src, "raw", "write -P 0x34 500k 1000");
    for (const cs of ["512", "4096", "65536"]) {
      const c = t.path(`comp-${cs}.qcow2`);
      expect(qemuImg(["convert", "-c", "-O", "qcow2", "-o", `cluster_size=${cs}`, src, c]).status).toBe(0);
      await expectSame(c, "qcow2");
    }
  });

  it("reports the same virtual size, format and backing as qemu-img info", async () => {
    const f = t.path("v3_64k.qcow2");
    const d = await openImage(f, { pool, readOnly: true });
    const info = JSON.parse(qemuImg(["info", "--output=json", f]).stdout) as { "virtual-size": number; "cluster-size": number };
    expect(d.size).toBe(info["virtual-size"]);
    expect(d.clusterSize).toBe(info["cluster-size"]);
    await d.close();
  });
});
