// `minivm img` prints what qemu-img prints for the same image and exits with its codes.
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { interop, qemuImg, qemuIo, useImg } from "../block/helpers.js";

const { t, img } = useImg();

/** Runs both tools from the temp dir so relative names print the same. */
function both(args: string[]): Promise<[{ status: number; stdout: string }, { status: number; stdout: string }]> {
  const cwd = process.cwd();
  process.chdir(t.dir);
  const q = qemuImg(args);
  return img(...args).then((m) => {
    process.chdir(cwd);
    return [m, q];
  });
}

describe.runIf(interop)("minivm img against qemu-img", () => {
  it("create prints the same Formatting line and makes the same bytes", async () => {
    for (const opts of [["-f", "qcow2"], ["-f", "qcow2", "-o", "compat=0.10,cluster_size=4096"], ["-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=512"], ["-f", "raw"]]) {
      const [m, q] = await both(["create", ...opts, "m.img", "5M"]);
      expect(m.status).toBe(0);
      const mine = readFileSync(t.path("m.img"));
      await both(["create", ...opts, "m.img", "5M"]).catch(() => undefined);
      qemuImg(["create", "-q", ...opts, t.path("q.img"), "5M"]);
      expect(m.stdout).toBe(q.stdout.replace("q.img", "m.img"));
      expect(Buffer.compare(mine, readFileSync(t.path("q.img")))).toBe(0);
    }
  });

  it("refuses -b without -F and lazy refcounts with compat=0.10, as qemu-img does", async () => {
    qemuImg(["create", "-q", "-f", "qcow2", t.path("base.qcow2"), "4M"]);
    const a = await img("create", "-f", "qcow2", "-b", t.path("base.qcow2"), t.path("o.qcow2"));
    expect(a.status).toBe(1);
    expect(a.stderr).toContain("Backing file specified without backing format");
    const b = await img("create", "-f", "qcow2", "-o", "lazy_refcounts=on,compat=0.10", t.path("o.qcow2"), "1M");
    expect(b.stderr).toContain("Lazy refcounts only supported with compatibility level 1.1 and above");
  });

  it("info (human and json) matches qemu-img for an overlay with data", async () => {
    qemuImg(["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", t.path("top.qcow2")]);
    qemuIo(t.path("top.qcow2"), "qcow2", "write -P 1 0 200k");
    for (const extra of [[], ["--output=json"], ["--output=json", "--backing-chain"]]) {
      const [m, q] = await both(["info", ...extra, "top.qcow2"]);
      expect(m.stdout).toBe(q.stdout);
    }
  });

  it("check prints qemu-img's report and exit code for clean, leaking and corrupt images", async () => {
    const [m, q] = await both(["check", "top.qcow2"]);
    expect(m).toEqual(q);
    // a leak: refcount 1 for an unused cluster inside the file
    copyFileSync(t.path("top.qcow2"), t.path("leak.qcow2"));
    const b = readFileSync(t.path("leak.qcow2"));
    const rb = Number(b.readBigUInt64BE(Number(b.readBigUInt64BE(48))));
    const clusters = Math.ceil(b.length / 65536);
    const grown = Buffer.concat([b, Buffer.alloc(65536 * 2)]);
    grown.writeUInt16BE(1, rb + 2 * (clusters + 1));
    writeFileSync(t.path("leak.qcow2"), grown);
    for (const args of [["check", "leak.qcow2"], ["check", "--output=json", "leak.qcow2"]]) {
      const [m2, q2] = await both(args);
      expect(m2.stdout).toBe(q2.stdout);
      expect(m2.status).toBe(3);
      expect(q2.status).toBe(3);
    }
    copyFileSync(t.path("leak.qcow2"), t.path("leak2.qcow2"));
    const m3 = await img("check", "-r", "leaks", t.path("leak.qcow2"));
    const q3 = qemuImg(["check", "-r", "leaks", t.path("leak2.qcow2")]);
    expect(m3.stdout).toBe(q3.stdout);
    expect(m3.stderr).toBe(q3.stderr);
    expect(m3.status).toBe(0);
    // corruption: refcount 0 for the first data cluster
    copyFileSync(t.path("top.qcow2"), t.path("bad.qcow2"));
    const c = readFileSync(t.path("bad.qcow2"));
    const l1 = Number(c.readBigUInt64BE(40));
    const l2 = Number(c.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
    const data = Number(c.readBigUInt64BE(l2) & 0x00fffffffffffe00n);
    c.writeUInt16BE(0, rb + 2 * (data / 65536));
    writeFileSync(t.path("bad.qcow2"), c);
    const [m4, q4] = await both(["check", "--output=json", "bad.qcow2"]);
    expect(m4.stdout).toBe(q4.stdout);
    expect(m4.status).toBe(2);
    copyFileSync(t.path("bad.qcow2"), t.path("bad2.qcow2"));
    const r = await img("check", "-r", "all", t.path("bad.qcow2"));
    const q5 = qemuImg(["check", "-r", "all", t.path("bad2.qcow2")]);
    expect(r.stdout).toBe(q5.stdout);
    expect(r.stderr).toBe(q5.stderr);
    expect(r.status).toBe(0);
    expect(qemuImg(["check", t.path("bad.qcow2")]).status).toBe(0);
  });

  it("check matches qemu-img on images with internal snapshots and on damaged compressed images", async () => {
    const s = t.path("snap.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", s, "4M"]);
    qemuIo(s, "qcow2", "write -P 1 0 100k");
    qemuImg(["snapshot", "-c", "one", s]);
    qemuIo(s, "qcow2", "write -P 2 50k 100k");
    const raw = t.path("c.raw");
    qemuImg(["create", "-q", "-f", "raw", raw, "1M"]);
    qemuIo(raw, "raw", "write -P 0x12 0 300k");
    const c = t.path("c.qcow2");
    qemuImg(["convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", raw, c]);
    const b = readFileSync(c);
    const l1 = Number(b.readBigUInt64BE(40));
    const l2 = Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
    const rb = Number(b.readBigUInt64BE(Number(b.readBigUInt64BE(48))));
    b.writeUInt16BE(0, rb + 2 * (l2 / 4096));
    writeFileSync(c, b);
    copyFileSync(c, t.path("c2.qcow2"));
    for (const args of [["check", "--output=json", "snap.qcow2"], ["check", "snap.qcow2"], ["check", "--output=json", "c.qcow2"], ["info", "snap.qcow2"], ["info", "--output=json", "snap.qcow2"]]) {
      const [m, q] = await both(args);
      expect(m).toEqual(q);
    }
    const m = await img("check", "-r", "all", "--output=json", c);
    const q = qemuImg(["check", "-r", "all", "--output=json", t.path("c2.qcow2")]);
    expect(m.stdout.replace("c.qcow2", "c2.qcow2")).toBe(q.stdout);
    expect(m.stderr).toBe(q.stderr);
  });

  it("map --output=json and human match qemu-img", async () => {
    for (const args of [["map", "--output=json", "top.qcow2"], ["map", "top.qcow2"]]) {
      const [m, q] = await both(args);
      expect(m.stdout).toBe(q.stdout);
    }
  });

  it("compare reports identical, mismatch offsets and exit codes like qemu-img", async () => {
    qemuImg(["convert", "-O", "raw", t.path("top.qcow2"), t.path("top.raw")]);
    qemuImg(["create", "-q", "-f", "qcow2", t.path("e1.qcow2"), "1M"]);
    qemuImg(["create", "-q", "-f", "qcow2", t.path("e2.qcow2"), "1M"]);
    qemuImg(["create", "-q", "-f", "raw", t.path("e.raw"), "1M"]);
    qemuIo(t.path("e2.qcow2"), "qcow2", "write -P 0 64k 4k");
    for (const args of [
      ["compare", "top.qcow2", "top.raw"],
      ["compare", "top.qcow2", "base.qcow2"],
      ["compare", "-s", "top.qcow2", "o.qcow2"],
      ["compare", "-s", "e1.qcow2", "e.raw"],
      ["compare", "-s", "e1.qcow2", "e2.qcow2"],
      ["compare", "-s", "e1.qcow2", "e1.qcow2"],
      ["compare", "e1.qcow2", "e2.qcow2"],
    ]) {
      const [m, q] = await both(args);
      expect(m.stdout).toBe(q.stdout);
      expect(m.status).toBe(q.status);
    }
    expect((await img("compare", t.path("nope"), t.path("top.raw"))).status).toBe(2);
  });

  it("convert -p draws qemu-img's progress bar", async () => {
    const r = await img("convert", "-p", "-O", "qcow2", t.path("top.qcow2"), t.path("conv.qcow2"));
    expect(r.stdout.startsWith("    (0.00/100%)\r")).toBe(true);
    expect(r.stdout.endsWith("    (100.00/100%)\r\n")).toBe(true);
  });

  it("bench prints qemu-img's two lines", async () => {
    const r = await img("bench", "-c", "100", "-d", "4", "-w", "-s", "4096", "-S", "8192", "-o", "512", "--pattern=7", t.path("top.raw"));
    const q = qemuImg(["bench", "-c", "100", "-d", "4", "-w", "-s", "4096", "-S", "8192", "-o", "512", "--pattern=7", "-f", "raw", t.path("top.raw")]);
    const strip = (s: string): string => s.replace(/\d+\.\d{3} seconds/, "T seconds");
    expect(strip(r.stdout)).toBe(strip(q.stdout));
  });
});
