// Postcopy between two real minivm processes running the teaching guest, which keeps rewriting
// its pages with `dirty` so that the destination faults on missing pages from the moment it
// starts. Then the case the project exists for: the channel breaks in postcopy, both sides
// pause, the destination's vCPU sits on a missing page holding the big lock so in-band QMP
// queues while out-of-band commands answer, and migrate-recover plus migrate resume bring it
// home without losing a page (the guest's own counters check every page afterwards).

import { createConnection } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { QmpClient, QmpEvent } from "../../src/qmp/client.js";
import type { MigrationCapability } from "../../src/qapi/generated/types.js";
import { diskCopy, PROMPT, type SerialConsole } from "../firmware/console.js";
import { tempDir } from "../helpers/vm.js";
import { endProcessesAfterEach, qmp, vm, waitMigration } from "./processes.js";

endProcessesAfterEach();

interface Info {
  status?: string;
  downtime?: number;
  "error-desc"?: string;
  ram?: { transferred: number; remaining: number; "postcopy-requests": number; "postcopy-bytes": number; "precopy-bytes": number };
  "x-postcopy-faults"?: { faults: number; "p50-us": number; "p99-us": number; "max-us": number; requests: number };
}

/** query-migrate until the status is one of `want` (or fails on another final one). */
const waitStatus = (c: QmpClient, want: string[], timeoutMs = 60_000): Promise<Info> => waitMigration<Info>(c, want, timeoutMs);

/** The MIGRATION event with `status`, skipping others (the destination's way to be watched). */
async function migrationEvent(c: QmpClient, status: string): Promise<QmpEvent> {
  for (;;) {
    const e = await c.waitEvent("MIGRATION");
    if ((e.data as { status?: string } | undefined)?.status === status) return e;
  }
}

const caps = (...names: MigrationCapability[]) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });

/**
 * A destination waiting and a source whose guest sweeps `mib` MiB at 16 MiB/s: 64 MiB keeps the
 * guest faulting for seconds after the switch, so a break meets a vCPU waiting for a page.
 */
async function pair(dir: string, mib = 16): Promise<{ src: SerialConsole; sq: QmpClient; dst: SerialConsole; dq: QmpClient; mig: string }> {
  const disk = diskCopy();
  const mig = join(dir, "mig.sock");
  const dst = vm([disk, "--qmp", `unix:${join(dir, "dst.sock")},server=on,wait=off`, "--incoming", `unix:${mig}`]);
  await dst.waitFor("QMP monitor listening");
  const dq = await qmp(join(dir, "dst.sock"));
  await dq.execute("migrate-set-capabilities", caps("postcopy-ram", "events"));
  const src = vm([disk, "--qmp", `unix:${join(dir, "src.sock")},server=on,wait=off`]);
  await src.waitFor(PROMPT, 60_000);
  expect(await src.command("disk write 1 0x706f7374")).toMatch(/disk write: OK/);
  src.type(`dirty ${mib} 16\n`);
  await src.waitFor(/dirty: \d+ MiB/);
  const sq = await qmp(join(dir, "src.sock"));
  await sq.execute("migrate-set-capabilities", caps("postcopy-ram", "events"));
  return { src, sq, dst, dq, mig };
}

/** Precopy at 4 MiB/s, then postcopy throttled to 64 KiB/s so it cannot finish before a break. */
async function startThrottledPostcopy(sq: QmpClient, dq: QmpClient, mig: string): Promise<void> {
  await sq.execute("migrate-set-parameters", { "max-bandwidth": 4 << 20, "max-postcopy-bandwidth": 64 << 10 });
  await sq.execute("migrate", { uri: `unix:${mig}` });
  await waitStatus(sq, ["active"]);
  await sq.execute("migrate-start-postcopy");
  await migrationEvent(dq, "postcopy-active");
}

async function expectGuestIntact(dst: SerialConsole): Promise<void> {
  dst.type("x");
  await dst.waitFor("dirty: stopped");
  await dst.waitFor(PROMPT);
  expect(await dst.command("check")).toMatch(/check: OK pages=\d+/);
  expect(await dst.command("uptime")).toMatch(/uptime: [\d.]+ s ticks=\d+/);
  expect(await dst.command("disk verify 1 0x706f7374")).toMatch(/disk verify: OK/);
}

describe("postcopy migration between two minivm processes", () => {
  it("runs the guest on the destination at once and faults its missing pages in over the return path", async () => {
    const dir = tempDir();
    const { sq, dst, dq, mig } = await pair(dir);
    // A slow precopy, so that most of RAM is still on the source when postcopy starts, and a
    // background push slower than the guest's sweep, so the guest meets missing pages however
    // late its vCPU starts on a loaded machine.
    await sq.execute("migrate-set-parameters", { "max-bandwidth": 4 << 20, "max-postcopy-bandwidth": 2 << 20 });
    await sq.execute("migrate", { uri: `unix:${mig}` });
    await waitStatus(sq, ["active"]);
    await sq.execute("migrate-start-postcopy");
    await migrationEvent(dq, "postcopy-active");
    const done = await waitStatus(sq, ["completed"]);
    await waitStatus(dq, ["completed"]);
    expect(done.ram?.["postcopy-requests"]).toBeGreaterThan(0);
    expect(done.ram?.["postcopy-bytes"]).toBeGreaterThan(0);
    expect(done.ram?.remaining).toBe(0);
    expect(typeof done.downtime).toBe("number");
    expect(await sq.execute("query-status")).toMatchObject({ status: "postmigrate", running: false });
    // Each status change is announced once, whichever thread announced it.
    const statuses: string[] = [];
    for (;;) {
      const e = await Promise.race([dq.nextEvent(), new Promise<null>((r) => setTimeout(() => r(null), 300))]);
      if (e === null) break;
      if (e.event === "MIGRATION") statuses.push((e.data as { status: string }).status);
    }
    expect(statuses.filter((x) => x === "completed")).toEqual(["completed"]);
    const dinfo = (await dq.execute("query-migrate")) as Info;
    expect(dinfo.status).toBe("completed");
    expect(dinfo["x-postcopy-faults"]?.faults).toBeGreaterThan(0);
    expect(dinfo["x-postcopy-faults"]!["p99-us"]).toBeGreaterThanOrEqual(dinfo["x-postcopy-faults"]!["p50-us"]);
    expect(await dq.execute("query-status")).toMatchObject({ status: "running", running: true });
    await expectGuestIntact(dst);
  });

  it("pauses on migrate-pause, keeps answering out of band while the vCPU waits under the lock, and recovers without losing a page", async () => {
    const dir = tempDir();
    const { sq, dst, dq, mig } = await pair(dir, 64);
    // QEMU's recovery test: postcopy throttled so hard it cannot finish before the break.
    await startThrottledPostcopy(sq, dq, mig);
    await waitStatus(sq, ["postcopy-active"]);

    // QEMU 7.2's guards, in its words.
    await expect(sq.execOob("migrate-recover", { uri: `unix:${join(dir, "x.sock")}` })).rejects.toThrow("Migrate recover can only be run when postcopy is paused.");
    await expect(sq.execute("migrate", { uri: `unix:${mig}`, resume: true })).rejects.toThrow("Cannot resume if there is no paused migration");

    // Break it from the source, out of band.
    expect(await sq.execOob("migrate-pause")).toEqual({});
    await waitStatus(sq, ["postcopy-paused"]);
    await migrationEvent(dq, "postcopy-paused");
    await expect(sq.execOob("migrate-pause")).rejects.toThrow("migrate-pause is currently only supported during postcopy-active state");

    // The destination's vCPU now sits on a missing page with the BQL: an in-band command
    // queues behind it, while out-of-band ones answer at once.
    const deadline = Date.now() + 20_000;
    let bql = (await dq.execOob("x-query-bql")) as { holder?: string; "held-ns"?: number };
    while (!(bql.holder === "vcpu0" && (bql["held-ns"] ?? 0) > 200e6) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      bql = (await dq.execOob("x-query-bql")) as { holder?: string; "held-ns"?: number };
    }
    expect(bql.holder).toBe("vcpu0");
    let inbandAnswered = false;
    const queued = dq.execute("query-status").then((r) => {
      inbandAnswered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(inbandAnswered).toBe(false);

    // Recover: the destination listens again (out of band). Asked twice, QEMU 7.2 drops the
    // first listener for the second; a resume towards nobody leaves the source paused.
    const stale = join(dir, "stale.sock");
    expect(await dq.execOob("migrate-recover", { uri: `unix:${stale}` })).toEqual({});
    const again = join(dir, "mig2.sock");
    expect(await dq.execOob("migrate-recover", { uri: `unix:${again}` })).toEqual({});
    await sq.execute("migrate", { uri: `unix:${join(dir, "nobody.sock")}`, resume: true });
    await new Promise((r) => setTimeout(r, 200));
    expect((await sq.execute("query-migrate")) as Info).toMatchObject({ status: "postcopy-paused" });
    await sq.execute("migrate-set-parameters", { "max-postcopy-bandwidth": 0 });
    await sq.execute("migrate", { uri: `unix:${again}`, resume: true });
    await waitStatus(sq, ["completed"]);
    expect(await queued).toMatchObject({ status: "running" });
    // postcopy-paused was announced once (migrationEvent took it): no second copy waits.
    const later: string[] = [];
    for (;;) {
      const e = await Promise.race([dq.nextEvent(), new Promise<null>((r) => setTimeout(() => r(null), 300))]);
      if (e === null) break;
      if (e.event === "MIGRATION") later.push((e.data as { status: string }).status);
    }
    expect(later).not.toContain("postcopy-paused");
    expect(inbandAnswered).toBe(true);
    await waitStatus(dq, ["completed"]);
    await expectGuestIntact(dst);
  });

  it("lists and yanks the migration channel, survives a recovery that breaks in its handshake, and finishes on the next one", async () => {
    const dir = tempDir();
    const { sq, dst, dq, mig } = await pair(dir, 64);
    expect(await sq.execOob("query-yank")).toEqual([{ type: "chardev", id: "compat_monitor0" }]);
    await startThrottledPostcopy(sq, dq, mig);
    expect(await dq.execOob("query-yank")).toEqual([{ type: "chardev", id: "compat_monitor0" }, { type: "migration" }]);
    await expect(dq.execOob("yank", { instances: [{ type: "chardev", id: "nope" }] })).rejects.toThrow("Instance not found");

    // Yank from the destination's side this time.
    expect(await dq.execOob("yank", { instances: [{ type: "migration" }] })).toEqual({});
    await migrationEvent(dq, "postcopy-paused");
    await waitStatus(sq, ["postcopy-paused"]);
    expect(await dq.execOob("query-yank")).toEqual([{ type: "chardev", id: "compat_monitor0" }]);

    // A recovery channel that dies in its handshake (QEMU's double-failure test: one stray
    // byte, then nothing) puts the destination back in postcopy-paused.
    const first = join(dir, "r1.sock");
    expect(await dq.execOob("migrate-recover", { uri: `unix:${first}` })).toEqual({});
    const stray = createConnection(first);
    await new Promise<void>((r) => stray.once("connect", () => r()));
    await migrationEvent(dq, "postcopy-recover");
    stray.end(Buffer.from([0x08]));
    await migrationEvent(dq, "postcopy-paused");

    // The real recovery.
    const second = join(dir, "r2.sock");
    expect(await dq.execOob("migrate-recover", { uri: `unix:${second}` })).toEqual({});
    await sq.execute("migrate-set-parameters", { "max-postcopy-bandwidth": 0 });
    await sq.execute("migrate", { uri: `unix:${second}`, resume: true });
    await waitStatus(sq, ["completed"]);
    await waitStatus(dq, ["completed"]);
    await expectGuestIntact(dst);
  });

  it("ends a destination whose vCPU waits for a page that will never come when it gets SIGTERM", async () => {
    const dir = tempDir();
    const { sq, dst, dq, mig } = await pair(dir, 64);
    await startThrottledPostcopy(sq, dq, mig);
    await sq.execOob("migrate-pause");
    await migrationEvent(dq, "postcopy-paused");
    const deadline = Date.now() + 20_000;
    while (((await dq.execOob("x-query-bql")) as { holder?: string }).holder !== "vcpu0" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    dst.proc.kill("SIGTERM");
    const code = await Promise.race([dst.exited, new Promise((r) => setTimeout(() => r("still running"), 15_000))]);
    expect(code).toBe(1);
    expect(dst.output()).toContain("the core thread does not answer");
  });

  it("opens the return path for the return-path capability alone, and a precopy still completes", async () => {
    const dir = tempDir();
    const { sq, dst, dq, mig } = await pair(dir);
    await sq.execute("migrate-set-capabilities", { capabilities: [{ capability: "postcopy-ram", state: false }, { capability: "return-path", state: true }] });
    await sq.execute("migrate", { uri: `unix:${mig}` });
    const done = await waitStatus(sq, ["completed"]);
    expect(done.ram?.["postcopy-bytes"]).toBe(0);
    await waitStatus(dq, ["completed"]);
    await expectGuestIntact(dst);
  });

  it("refuses postcopy over a channel without a way back, as QEMU does", async () => {
    const dir = tempDir();
    const { sq } = await pair(dir);
    await sq.execute("migrate", { uri: `exec:cat > ${join(dir, "x.mig")}` });
    const failed = await waitStatus(sq, ["failed"]);
    expect(failed["error-desc"]).toBe("Unable to open return-path for postcopy");
    expect(await sq.execute("query-status")).toMatchObject({ status: "running" });
  });

  it("cancels a paused postcopy migration, and keeps the source stopped: the destination has run the guest", async () => {
    const dir = tempDir();
    const { sq, dq, mig } = await pair(dir, 64);
    await startThrottledPostcopy(sq, dq, mig);
    await sq.execOob("migrate-pause");
    await waitStatus(sq, ["postcopy-paused"]);
    await sq.execute("migrate_cancel");
    await waitStatus(sq, ["cancelled"]);
    expect(await sq.execute("query-status")).toMatchObject({ running: false });
    await expect(sq.execute("migrate", { uri: `unix:${mig}`, resume: true })).rejects.toThrow("Cannot resume if there is no paused migration");
  });
});
