// Image locking against real processes: two openers in one process (OFD locks conflict per
// open file description), two minivm processes, minivm against qemu-system-riscv32 and
// qemu-img both ways, migration's inactivate/activate hand-over, and kill -9 of a holder.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as tick } from "node:timers/promises";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { BlockLayer } from "../../src/block/blockdev.js";
import { openImage } from "../../src/block/image.js";
import { IoPool } from "../../src/block/io-pool.js";
import { ImageLockError } from "../../src/block/lock.js";
import { requireTool } from "../helpers/interop.js";
import { BIN, startVm, type VmProcess } from "../helpers/vm.js";
import { buildDist, cleanupDist, tempDir } from "./helpers.js";

const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");
const haveQemuImg = requireTool("qemu-img", "qemu-utils");

const t = tempDir();
const pool = new IoPool();
const children: ChildProcess[] = [];
const vms: VmProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const v of vms.splice(0)) await v.kill();
});
afterAll(async () => {
  await pool.close();
  cleanupDist();
  t.cleanup();
});

function rawImage(name: string): string {
  const p = t.path(name);
  writeFileSync(p, Buffer.alloc(1 << 20));
  return p;
}

/** Which bytes of `file` someone locks, from the kernel's table (proc(5) /proc/locks). */
function lockedBytes(file: string): number[] {
  const ino = statSync(file).ino;
  const out: number[] = [];
  for (const line of readFileSync("/proc/locks", "utf8").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] === "->" || !f[5].endsWith(`:${ino}`)) continue;
    for (let b = Number(f[6]); b <= Number(f[7]); b++) out.push(b);
  }
  return out.sort((a, b) => a - b);
}

/** Waits for another process to reach a state visible in the lock table, not for a time. */
async function until(cond: () => boolean, what: string, proc?: ChildProcess): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (cond()) return;
    if (proc && (proc.exitCode !== null || proc.signalCode !== null)) throw new Error(`process ended before ${what}`);
    await tick(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function qemu(args: string[]): ChildProcess {
  const p = spawn("qemu-system-riscv32", ["-M", "virt", "-nographic", "-bios", "none", "-S", "-display", "none", "-monitor", "none", "-serial", "none", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(p);
  return p;
}

function qemuDrive(file: string, extra = "", dev = ""): string[] {
  return ["-drive", `file=${file},format=raw,if=none,id=d0${extra}`, "-device", `virtio-blk-device,drive=d0${dev}`];
}

function qemuFails(args: string[]): string {
  const r = spawnSync("qemu-system-riscv32", ["-M", "virt", "-nographic", "-bios", "none", "-S", "-display", "none", "-monitor", "none", "-serial", "none", ...args], { encoding: "utf8", timeout: 20_000 });
  expect(r.status).toBe(1);
  return r.stderr;
}

describe("locks between two openers", () => {
  it("refuses a second writer in QEMU's words and takes QEMU's bytes for a raw disk", async () => {
    const img = rawImage("two-writers.img");
    const a = await openImage(img, { pool, format: "raw" });
    try {
      expect(lockedBytes(img)).toEqual([100, 101, 201]);
      const err = await openImage(img, { pool, format: "raw" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageLockError);
      expect((err as Error).message).toBe(`Failed to get "write" lock\nIs another process using the image [${img}]?`);
      // A reader that needs consistent data does not share WRITE: refused as qemu-img is.
      await expect(openImage(img, { pool, format: "raw", readOnly: true })).rejects.toThrow('Failed to get shared "write" lock');
      const shared = await openImage(img, { pool, format: "raw", readOnly: true, forceShare: true });
      await shared.close();
    } finally {
      await a.close();
    }
    expect(lockedBytes(img)).toEqual([]);
  });

  it("lets readers share and ignores locking=off", async () => {
    const img = rawImage("readers.img");
    const r1 = await openImage(img, { pool, format: "raw", readOnly: true });
    const r2 = await openImage(img, { pool, format: "raw", readOnly: true });
    const w = await openImage(img, { pool, format: "raw", locking: "off" });
    await Promise.all([r1.close(), r2.close(), w.close()]);
  });

  it("hands an image over: inactivate on the source, activate on the destination", async () => {
    const img = rawImage("handover.img");
    const src = await BlockLayer.open([`file=${img},format=raw,id=d0`], [], []);
    const dst = await BlockLayer.open([`file=${img},format=raw,id=d0`], [], [], { inactive: true });
    try {
      await expect(dst.activateAll()).rejects.toThrow('Failed to get "write" lock');
      expect(dst.isInactive).toBe(true);
      await src.inactivateAll();
      expect(lockedBytes(img)).toEqual([]);
      await dst.activateAll();
      expect(lockedBytes(img)).toEqual([100, 101, 201]);
      // The source cannot take the image back while the destination runs.
      await expect(src.activateAll()).rejects.toThrow('Failed to get "write" lock');
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it("sees a qcow2 written by the source after the destination opened it", async () => {
    const img = t.path("handover.qcow2");
    const { createImage } = await import("../../src/block/create.js");
    await createImage({ filename: img, format: "qcow2", pool, size: 4 << 20 });
    const dst = await BlockLayer.open([`file=${img},format=qcow2,id=d0`], [], [], { inactive: true });
    const src = await BlockLayer.open([`file=${img},format=qcow2,id=d0`], [], []);
    try {
      await src.backends[0].write(3 << 20, new Uint8Array(512).fill(0x5a));
      await src.inactivateAll();
      await dst.activateAll();
      expect((await dst.backends[0].read(3 << 20, 512))[100]).toBe(0x5a);
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it("releases the lock when the holding process is killed with SIGKILL", async () => {
    const img = rawImage("kill9.img");
    const dist = buildDist();
    const script = `const { openImage } = await import(${JSON.stringify(join(dist, "src/block/image.js"))}); const { IoPool } = await import(${JSON.stringify(join(dist, "src/block/io-pool.js"))}); await openImage(${JSON.stringify(img)}, { pool: new IoPool(), format: "raw" }); process.stdout.write("held\\n"); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    await until(() => lockedBytes(img).includes(101), "the child's lock", child);
    await expect(openImage(img, { pool, format: "raw" })).rejects.toThrow('Failed to get "write" lock');
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const d = await openImage(img, { pool, format: "raw" });
    await d.close();
  });
});

describe("minivm processes", () => {
  it("refuses a second minivm on a disk in use and keeps the first running", async () => {
    const img = rawImage("vm.img");
    const first = await startVm(["--drive", `file=${img},format=raw,id=d0`, "--serial", "none"]);
    vms.push(first);
    await until(() => lockedBytes(img).includes(101), "the first VM's lock", first.proc);
    const r = spawnSync(process.execPath, [BIN, "run", "-S", "--serial", "none", "--drive", `file=${img},format=raw,id=d0`], { encoding: "utf8", timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`Failed to get "write" lock\nIs another process using the image [${img}]?`);
    const c = await first.connect();
    expect(await c.execute("query-status")).toMatchObject({ status: "prelaunch" });
    await c.close();
  });

  it("refuses minivm img check on a disk in use unless -U is given", async () => {
    const img = rawImage("img-check.img");
    const holder = await openImage(img, { pool, format: "raw" });
    try {
      const refused = spawnSync(process.execPath, [BIN, "img", "map", "-f", "raw", img], { encoding: "utf8" });
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain(`Could not open '${img}': Failed to get shared "write" lock`);
      const forced = spawnSync(process.execPath, [BIN, "img", "map", "-U", "-f", "raw", img], { encoding: "utf8" });
      expect(forced.status).toBe(0);
    } finally {
      await holder.close();
    }
  });
});

describe.skipIf(!haveQemu)("minivm and QEMU respect each other's locks", () => {
  it("refuses a minivm writer while QEMU has the image read-write", async () => {
    const img = rawImage("qemu-holds.img");
    const q = qemu(qemuDrive(img));
    await until(() => lockedBytes(img).includes(101), "QEMU's lock", q);
    await expect(openImage(img, { pool, format: "raw" })).rejects.toThrow(`Failed to get "write" lock\nIs another process using the image [${img}]?`);
    await expect(openImage(img, { pool, format: "raw", readOnly: true })).rejects.toThrow('Failed to get shared "write" lock');
    const ok = await openImage(img, { pool, format: "raw", locking: "off" });
    await ok.close();
  });

  it("refuses QEMU while minivm holds the image, and QEMU's share-rw reader can't write either", async () => {
    const img = rawImage("minivm-holds.img");
    const d = await openImage(img, { pool, format: "raw" });
    try {
      expect(qemuFails(qemuDrive(img))).toContain(`Failed to get "write" lock\nIs another process using the image [${img}]?`);
      expect(qemuFails(qemuDrive(img, ",readonly=on"))).toContain('Failed to get shared "write" lock');
    } finally {
      await d.close();
    }
  });

  it("shares an image read-only with QEMU", async () => {
    const img = rawImage("ro-share.img");
    const d = await openImage(img, { pool, format: "raw", readOnly: true });
    try {
      const q = qemu(qemuDrive(img, ",readonly=on"));
      await until(() => lockedBytes(img).filter((b) => b === 100).length === 2, "QEMU's read lock beside minivm's", q);
      const second = await openImage(img, { pool, format: "raw", readOnly: true });
      await second.close();
    } finally {
      await d.close();
    }
  });

  it.skipIf(!haveQemuImg)("qemu-img check is refused on a qcow2 minivm writes, unless -U", async () => {
    const img = t.path("qemu-img.qcow2");
    spawnSync("qemu-img", ["create", "-f", "qcow2", img, "1M"]);
    const d = await openImage(img, { pool, format: "qcow2" });
    try {
      const r = spawnSync("qemu-img", ["check", img], { encoding: "utf8" });
      expect(r.stderr).toContain(`Could not open '${img}': Failed to get shared "write" lock`);
      expect(spawnSync("qemu-img", ["check", "-U", img]).status).toBe(0);
    } finally {
      await d.close();
    }
  });
});
