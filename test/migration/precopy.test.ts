// Live precopy migration between two real minivm processes running the teaching guest: the
// source keeps rewriting pages with `dirty` while its RAM moves; afterwards the destination's
// guest runs `check` (every page's counter, QEMU migration-test style) and its own shell, and
// the source sits in postmigrate. Channels: unix, tcp, exec to a file and back, file:.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { QmpClient } from "../../src/qmp/client.js";
import { diskCopy, PROMPT, type SerialConsole } from "../firmware/console.js";
import { tempDir } from "../helpers/vm.js";
import { endProcessesAfterEach, qmp, vm, waitMigration } from "./processes.js";
import { qemuSourceFile } from "../helpers/interop.js";
import { checkDirtyImage, DIRTY_BASE } from "../firmware/dirty-image.js";

endProcessesAfterEach();

type Info = Awaited<ReturnType<QmpClient["execute"]>> & { status?: string; ram?: { transferred: number; "dirty-sync-count": number; total: number }; "error-desc"?: string; downtime?: number };

/** query-migrate until the status is one of `want` (or fails on another final one). */
const waitStatus = (c: QmpClient, want: string[], timeoutMs = 40_000): Promise<Info> => waitMigration<Info>(c, want, timeoutMs);

/** A source at its shell with `dirty` sweeping `mib` MiB at `rate` MiB/s, and its QMP. */
async function busySource(dir: string, disk: string, mib: number, rate: number): Promise<{ src: SerialConsole; sq: QmpClient }> {
  const src = vm([disk, "--qmp", `unix:${join(dir, "src.sock")},server=on,wait=off`]);
  await src.waitFor(PROMPT, 60_000);
  expect(await src.command("disk write 1 0x6d696772")).toMatch(/disk write: OK/);
  src.type(`dirty ${mib} ${rate}\n`);
  await src.waitFor(/dirty: \d+ MiB/);
  const sq = await qmp(join(dir, "src.sock"));
  return { src, sq };
}

/** The destination's guest goes on: stop `dirty` with a key, then the counters must hold. */
async function expectGuestIntact(dst: SerialConsole): Promise<void> {
  dst.type("x");
  await dst.waitFor("dirty: stopped");
  await dst.waitFor(PROMPT);
  const check = await dst.command("check");
  expect(check).toMatch(/check: OK pages=\d+/);
  // The shell and the timer work, so the guest is whole, not just its counters; and what it
  // wrote to its disk before the migration reads back after it.
  expect(await dst.command("uptime")).toMatch(/uptime: [\d.]+ s ticks=\d+/);
  expect(await dst.command("disk verify 1 0x6d696772")).toMatch(/disk verify: OK/);
}

describe("precopy migration between two minivm processes", () => {
  it("moves a guest that keeps dirtying memory over a unix socket", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    const { vm: dst, q: dq } = await destination(dir, "dst", disk, `unix:${join(dir, "mig.sock")}`);
    expect(await dq.execute("query-status")).toMatchObject({ status: "inmigrate", running: false });
    const { sq } = await busySource(dir, disk, 16, 8);
    await sq.execute("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }] });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    const done = await waitStatus(sq, ["completed"]);
    expect(done.ram?.total).toBe(128 * 1024 * 1024);
    expect(done.ram?.transferred).toBeGreaterThan(16 * 1024 * 1024);
    expect(done.ram?.["dirty-sync-count"]).toBeGreaterThanOrEqual(2);
    expect(await sq.execute("query-status")).toMatchObject({ status: "postmigrate", running: false });
    // The images belong to the destination now: cont on the source cannot take them back.
    await expect(sq.execute("cont")).rejects.toThrow(/Failed to get "write" lock/);
    expect(await sq.execute("query-status")).toMatchObject({ status: "postmigrate", running: false });
    await waitStatus(dq, ["completed"]);
    expect(await dq.execute("query-status")).toMatchObject({ status: "running", running: true });
    await expectGuestIntact(dst);
  });

  it("moves a guest over tcp, and through a file with exec: and file:", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    // tcp.
    const { vm: dst, q: dq, port } = await destination(dir, "dst", disk, "tcp:127.0.0.1:0");
    expect(port).toBeGreaterThan(0);
    const { sq } = await busySource(dir, disk, 4, 4);
    await sq.execute("migrate", { uri: `tcp:127.0.0.1:${port}` });
    await waitStatus(sq, ["completed"]);
    await waitStatus(dq, ["completed"]);
    await expectGuestIntact(dst);

    // From that destination to a file with exec:, then into a third process from the file.
    const file = join(dir, "guest.mig");
    await dq.execute("migrate", { uri: `exec:cat > ${file}` });
    await waitStatus(dq, ["completed"]);
    expect(existsSync(file)).toBe(true);
    // The RAM in that file, as QEMU's own analyze-migration.py extracts it, holds the guest's
    // dirty pages with their counters intact (the check the guest makes, made from outside).
    const script = qemuSourceFile("scripts/analyze-migration.py");
    if (script !== null) {
      execFileSync("python3", [script, "-f", file, "-x"], { cwd: dir, maxBuffer: 256 << 20 });
      const ram = readFileSync(join(dir, "riscv_virt_board.ram"));
      expect(ram.length).toBe(128 * 1024 * 1024);
      const off = DIRTY_BASE - 0x80000000;
      expect(checkDirtyImage(ram.subarray(off, off + 4 * 1024 * 1024), 1024)).toBeNull();
    }
    const { vm: third, q: tq } = await destination(dir, "third", disk, `exec:cat ${file}`);
    await waitStatus(tq, ["completed"]);
    expect(await third.command("check")).toMatch(/check: OK/);

    // And file: with an offset, out of the third and into a fourth.
    await tq.execute("migrate", { uri: `file:${join(dir, "guest2.mig")},offset=4096` });
    await waitStatus(tq, ["completed"]);
    const { vm: fourth, q: fq } = await destination(dir, "fourth", disk, `file:${join(dir, "guest2.mig")},offset=4096`);
    await waitStatus(fq, ["completed"]);
    expect(await fourth.command("check")).toMatch(/check: OK/);
  });

  it("leaves the destination failed but answering when the source dies mid-stream", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    const { vm: dst, q: dq } = await destination(dir, "dst", disk, `unix:${join(dir, "mig.sock")}`);
    const { src, sq } = await busySource(dir, disk, 32, 64);
    await sq.execute("migrate-set-parameters", { "max-bandwidth": 4 * 1024 * 1024 });
    await sq.execute("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }] });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    await waitStatus(sq, ["active"]);
    await waitStatus(dq, ["active"]);
    src.proc.kill("SIGKILL");
    await waitStatus(dq, ["failed"]);
    await dst.waitFor("load of migration failed");
    // Still up, still a destination that never ran the half-loaded guest.
    expect(await dq.execute("query-status")).toMatchObject({ status: "inmigrate", running: false });
    expect(dst.proc.exitCode).toBeNull();
  });

  it("waits for migrate-incoming with -incoming defer, stays paused with -S, and pauses before switchover when asked", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    const dst = vm(["-S", disk, "--qmp", `unix:${join(dir, "dst.sock")},server=on,wait=off`, "--incoming", "defer"]);
    await dst.waitFor("QMP monitor listening");
    const dq = await qmp(join(dir, "dst.sock"));
    expect(await dq.execute("query-status")).toMatchObject({ status: "inmigrate" });
    await dq.execute("migrate-incoming", { uri: `unix:${join(dir, "mig.sock")}` });
    const { sq } = await busySource(dir, disk, 8, 8);
    await sq.execute("migrate-set-capabilities", { capabilities: [{ capability: "pause-before-switchover", state: true }, { capability: "events", state: true }] });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    // The source stops its guest and waits in pre-switchover for migrate-continue.
    await waitStatus(sq, ["pre-switchover"]);
    expect(await sq.execute("query-status")).toMatchObject({ status: "finish-migrate", running: false });
    await sq.execute("migrate-continue", { state: "pre-switchover" });
    await waitStatus(sq, ["completed"]);
    await waitStatus(dq, ["completed"]);
    // -S: the destination has the guest but waits for cont.
    expect(await dq.execute("query-status")).toMatchObject({ status: "paused", running: false });
    await dq.execute("cont");
    expect(await dq.execute("query-status")).toMatchObject({ status: "running", running: true });
    await expectGuestIntact(dst);
  });

  it("does not converge on a guest that dirties faster than the link, until auto-converge throttles it", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    const { vm: dst } = await destination(dir, "dst", disk, `unix:${join(dir, "mig.sock")}`);
    // `dirty 32` with no rate limit rewrites its 32 MiB about 30 times a second: at 64 MiB/s
    // every pass finds all of it dirty again, so the remainder never fits 300 ms.
    const { sq } = await busySource(dir, disk, 32, 0);
    await sq.execute("migrate-set-parameters", { "max-bandwidth": 64 * 1024 * 1024, "cpu-throttle-initial": 80, "cpu-throttle-increment": 10 });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    const t0 = Date.now();
    let info = await waitStatus(sq, ["active"]);
    while (Date.now() - t0 < 3000) {
      info = (await sq.execute("query-migrate")) as Info;
      expect(info.status).toBe("active");
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(info.ram?.["dirty-sync-count"]).toBeGreaterThanOrEqual(3);
    await sq.execute("migrate_cancel");
    await waitStatus(sq, ["cancelled"]);

    // The same with auto-converge: QEMU's throttle steps (80, 90, 99 %) slow the vCPU until a
    // pass leaves little enough.
    const { vm: dst2 } = await destination(dir, "dst2", disk, `unix:${join(dir, "mig2.sock")}`);
    await sq.execute("migrate-set-capabilities", { capabilities: [{ capability: "auto-converge", state: true }] });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig2.sock")}` });
    let throttle = 0;
    for (;;) {
      const q = (await sq.execute("query-migrate")) as Info & { "cpu-throttle-percentage"?: number };
      throttle = Math.max(throttle, q["cpu-throttle-percentage"] ?? 0);
      if (q.status === "completed") break;
      if (q.status !== "active" && q.status !== "setup" && q.status !== "device") throw new Error(`migration ${q.status}: ${q["error-desc"] ?? ""}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(throttle).toBeGreaterThanOrEqual(80);
    // The throttle ends with the migration (QEMU's cpu_throttle_stop).
    expect((await sq.execute("query-migrate")) as object).not.toHaveProperty("cpu-throttle-percentage");
    await expectGuestIntact(dst2);
    void dst;
  }, 120_000);

  it("leaves the source running when the migration is cancelled or the destination dies", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    await destination(dir, "dst", disk, `unix:${join(dir, "mig.sock")}`);
    const { src, sq } = await busySource(dir, disk, 32, 64);
    // A bandwidth so low that the migration is still running when it is cancelled.
    await sq.execute("migrate-set-parameters", { "max-bandwidth": 4 * 1024 * 1024 });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    await waitStatus(sq, ["active"]);
    await sq.execute("migrate_cancel");
    await waitStatus(sq, ["cancelled"]);
    expect(await sq.execute("query-status")).toMatchObject({ status: "running" });
    src.type("x");
    await src.waitFor(PROMPT);
    expect(await src.command("check")).toMatch(/check: OK/);

    // A destination killed mid-stream: the source fails and runs on.
    const { vm: dst2 } = await destination(dir, "dst2", disk, `unix:${join(dir, "mig2.sock")}`);
    src.type("dirty 32 64\n");
    await src.waitFor(/dirty: \d+ MiB/);
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig2.sock")}` });
    await waitStatus(sq, ["active"]);
    dst2.proc.kill("SIGKILL");
    const failed = await waitStatus(sq, ["failed"]);
    expect(failed["error-desc"]).toBeTruthy();
    expect(await sq.execute("query-status")).toMatchObject({ status: "running" });
  });
});

/**
 * A destination VM started with `--incoming uri`, once query-migrate's socket-address says it
 * listens (for tcp port 0 that also gives the port).
 */
async function destination(dir: string, name: string, disk: string, uri: string): Promise<{ vm: SerialConsole; q: QmpClient; port: number | null }> {
  const c = vm([disk, "--qmp", `unix:${join(dir, `${name}.sock`)},server=on,wait=off`, "--incoming", uri]);
  await c.waitFor("QMP monitor listening");
  const q = await qmp(join(dir, `${name}.sock`));
  if (!uri.startsWith("unix:") && !uri.startsWith("tcp:")) return { vm: c, q, port: null };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const info = (await q.execute("query-migrate")) as { "socket-address"?: { type: string; port?: string }[] };
    const addr = info["socket-address"]?.[0];
    if (addr !== undefined) return { vm: c, q, port: addr.port === undefined ? null : Number(addr.port) };
    if (Date.now() > deadline) throw new Error(`no socket-address in ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
