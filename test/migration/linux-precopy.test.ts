// Live migration of a running Linux guest (guests/linux) between two minivm processes: while
// `dirty` rewrites its pages the guest moves, by precopy, and by postcopy with a broken link
// recovered on the way; on the destination the Linux shell goes on, `check` finds every page
// counter intact and what Linux wrote to the disk reads back.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { SerialConsole } from "../firmware/console.js";
import { BIN } from "../helpers/vm.js";

const PROMPT = "linux$ ";
const running: SerialConsole[] = [];
const clients: QmpClient[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const vm of running.splice(0)) await vm.kill();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function linux(args: string[]): SerialConsole {
  const c = new SerialConsole(process.execPath, [BIN, "run", "--guest", "linux", "-m", "128M", ...args]);
  running.push(c);
  return c;
}

async function qmp(path: string): Promise<QmpClient> {
  const c = await QmpClient.connect(`unix:${path}`);
  clients.push(c);
  return c;
}

async function run(c: SerialConsole, line: string): Promise<string> {
  c.type(`${line}\n`);
  return (await c.waitFor(PROMPT, 60_000)).slice(line.length + 1, -PROMPT.length);
}

async function waitStatus(c: QmpClient, want: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await c.execute("query-migrate")) as Record<string, unknown>;
    if (info.status === want) return info;
    if (info.status === "failed") throw new Error(`migration failed: ${String(info["error-desc"])}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${want}: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("precopy migration of a Linux guest", () => {
  it("moves Linux while dirty rewrites its pages; check and the disk hold on the destination", async () => {
    const dir = mkdtempSync(join(tmpdir(), "minivm-linux-mig-"));
    dirs.push(dir);
    // Both processes open the same disk, as QEMU on shared storage.
    const disk = join(dir, "disk.img");
    writeFileSync(disk, gunzipSync(readFileSync(join(import.meta.dirname, "../../guests/linux/build/disk.img.gz"))));
    const dst = linux([disk, "--qmp", `unix:${join(dir, "dst.sock")},server=on,wait=off`, "--incoming", `unix:${join(dir, "mig.sock")}`]);
    await dst.waitFor("QMP monitor listening");
    const dq = await qmp(join(dir, "dst.sock"));

    const src = linux([disk, "--qmp", `unix:${join(dir, "src.sock")},server=on,wait=off`]);
    await src.waitFor(PROMPT, 180_000);
    expect(await run(src, "disk write 1 0x6d696772")).toBe("disk write: OK 1 MiB pattern=0x6d696772\n");
    src.type("dirty 16 8 600\n");
    await src.waitFor("dirty: 16 MiB (4096 pages)");
    const sq = await qmp(join(dir, "src.sock"));
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    const done = (await waitStatus(sq, "completed")) as { ram?: { total: number; transferred: number } };
    expect(done.ram?.total).toBe(128 * 1024 * 1024);
    expect(await sq.execute("query-status")).toMatchObject({ status: "postmigrate", running: false });
    await waitStatus(dq, "completed");
    expect(await dq.execute("query-status")).toMatchObject({ status: "running", running: true });

    // Enter stops dirty on the destination; the page counters show no lost or stale page.
    dst.type("\n");
    expect(await dst.waitFor(PROMPT, 60_000)).toMatch(/dirty: stopped sweeps=\d+ pages=\d+/);
    expect(await run(dst, "check")).toMatch(/^check: OK pages=4096 first=\d+ last=\d+ step=(\d+|none)\n$/);
    expect(await run(dst, "disk verify 1 0x6d696772")).toBe("disk verify: OK 1 MiB pattern=0x6d696772\n");
    expect(await run(dst, "uptime")).toMatch(/^uptime: [\d.]+ s, load average/);
  }, 400_000);

  it("moves Linux by postcopy, survives a link cut in the middle, and loses no page", async () => {
    const dir = mkdtempSync(join(tmpdir(), "minivm-linux-pc-"));
    dirs.push(dir);
    const disk = join(dir, "disk.img");
    writeFileSync(disk, gunzipSync(readFileSync(join(import.meta.dirname, "../../guests/linux/build/disk.img.gz"))));
    const caps = { capabilities: [{ capability: "postcopy-ram" as const, state: true }, { capability: "events" as const, state: true }] };
    const dst = linux([disk, "--qmp", `unix:${join(dir, "dst.sock")},server=on,wait=off`, "--incoming", `unix:${join(dir, "mig.sock")}`]);
    await dst.waitFor("QMP monitor listening");
    const dq = await qmp(join(dir, "dst.sock"));
    await dq.execute("migrate-set-capabilities", caps);

    const src = linux([disk, "--qmp", `unix:${join(dir, "src.sock")},server=on,wait=off`]);
    await src.waitFor(PROMPT, 180_000);
    expect(await run(src, "disk write 1 0x706f7374")).toBe("disk write: OK 1 MiB pattern=0x706f7374\n");
    src.type("dirty 32 16 600\n");
    await src.waitFor("dirty: 32 MiB");
    const sq = await qmp(join(dir, "src.sock"));
    await sq.execute("migrate-set-capabilities", caps);
    await sq.execute("migrate-set-parameters", { "max-bandwidth": 4 << 20, "max-postcopy-bandwidth": 256 << 10 });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    await waitStatus(sq, "active");
    await sq.execute("migrate-start-postcopy");
    for (;;) {
      const e = await dq.waitEvent("MIGRATION");
      if ((e.data as { status: string }).status === "postcopy-active") break;
    }
    // Linux runs on the destination with most of its RAM still on the source; cut the link.
    await new Promise((r) => setTimeout(r, 500));
    await sq.execOob("migrate-pause");
    await waitStatus(sq, "postcopy-paused");
    for (;;) {
      const e = await dq.waitEvent("MIGRATION");
      if ((e.data as { status: string }).status === "postcopy-paused") break;
    }
    await dq.execOob("migrate-recover", { uri: `unix:${join(dir, "mig2.sock")}` });
    await sq.execute("migrate-set-parameters", { "max-postcopy-bandwidth": 0 });
    await sq.execute("migrate", { uri: `unix:${join(dir, "mig2.sock")}`, resume: true });
    const done = (await waitStatus(sq, "completed")) as { ram?: { "postcopy-requests": number } };
    expect(done.ram?.["postcopy-requests"]).toBeGreaterThan(0);
    await waitStatus(dq, "completed");
    dst.type("\n");
    expect(await dst.waitFor(PROMPT, 60_000)).toMatch(/dirty: stopped sweeps=\d+ pages=\d+/);
    expect(await run(dst, "check")).toMatch(/^check: OK pages=8192 first=\d+ last=\d+ step=(\d+|none)\n$/);
    expect(await run(dst, "disk verify 1 0x706f7374")).toBe("disk verify: OK 1 MiB pattern=0x706f7374\n");
  }, 400_000);
});
