// Precopy migration of the teaching guest between two minivm processes over TLS, with
// QEMU's parameters (tls-creds, tls-hostname, tls-authz): the destination is the TLS
// server. Mismatched credentials fail the migration cleanly: the source runs on, and the
// destination keeps listening and then takes the right source.

import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { diskCopy, PROMPT, removeDiskCopies, SerialConsole } from "../firmware/console.js";
import { BIN, tempDir } from "../helpers/vm.js";
import { HAVE_OPENSSL, makePki, type Pki } from "./pki.js";

const running: SerialConsole[] = [];
const clients: QmpClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const vm of running.splice(0)) await vm.kill();
});
afterAll(() => removeDiskCopies());

type Info = { status?: string; "error-desc"?: string; "socket-address"?: Array<{ port?: string }> };

async function waitStatus(c: QmpClient, want: string[], timeoutMs = 60_000): Promise<Info> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await c.execute("query-migrate")) as Info;
    if (info.status !== undefined && want.includes(info.status)) return info;
    if (info.status === "failed" && !want.includes("failed")) throw new Error(`migration failed: ${info["error-desc"] ?? "?"}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${want.join("|")}: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function vm(dir: string, name: string, args: string[]): Promise<{ c: SerialConsole; q: QmpClient }> {
  const sock = join(dir, `${name}.sock`);
  const c = new SerialConsole(process.execPath, [BIN, "run", ...args, "--qmp", `unix:${sock},server=on,wait=off`]);
  running.push(c);
  await c.waitFor("QMP monitor listening");
  const q = await QmpClient.connect(`unix:${sock}`);
  clients.push(q);
  return { c, q };
}

/** Waits for the MIGRATION event with `status` (the destination's in-band QMP may be stuck). */
async function migrationEvent(q: QmpClient, status: string): Promise<void> {
  for (;;) {
    const e = await q.waitEvent("MIGRATION");
    if ((e.data as { status: string }).status === status) return;
  }
}

/** A tcp port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

describe.runIf(HAVE_OPENSSL)("migration over TLS", () => {
  let pki: Pki;
  beforeAll(() => {
    pki = makePki();
  });

  /** A destination with server credentials and -incoming defer, listening on a TLS tcp port. */
  async function destination(dir: string, disk: string, authz: string | null): Promise<{ c: SerialConsole; q: QmpClient; port: number }> {
    const objects = ["-object", `tls-creds-x509,id=tls0,dir=${pki.serverDir},endpoint=server`];
    if (authz !== null) objects.push("-object", `authz-simple,id=auth0,identity=${authz.replace(/,/g, ",,")}`);
    const d = await vm(dir, "dst", [disk, ...objects, "--incoming", "defer"]);
    await d.q.execute("migrate-set-parameters", { "tls-creds": "tls0", ...(authz === null ? {} : { "tls-authz": "auth0" }) });
    await d.q.execute("migrate-incoming", { uri: "tcp:127.0.0.1:0" });
    for (;;) {
      const info = (await d.q.execute("query-migrate")) as Info;
      const port = info["socket-address"]?.[0]?.port;
      if (port !== undefined) return { ...d, port: Number(port) };
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function source(dir: string, disk: string, clientDir: string): Promise<{ c: SerialConsole; q: QmpClient }> {
    const s = await vm(dir, "src", [disk, "-object", `tls-creds-x509,id=tls0,dir=${clientDir},endpoint=client`]);
    await s.c.waitFor(PROMPT, 60_000);
    s.c.type("dirty 8 8\n");
    await s.c.waitFor(/dirty: \d+ MiB/);
    await s.q.execute("migrate-set-parameters", { "tls-creds": "tls0", "tls-hostname": "localhost" });
    return s;
  }

  it("moves a guest that keeps dirtying memory, with the destination checking the source's certificate", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    const dst = await destination(dir, disk, pki.clientDn);
    const src = await source(dir, disk, pki.clientDir);
    expect(await src.q.execute("query-migrate-parameters")).toMatchObject({ "tls-creds": "tls0", "tls-hostname": "localhost", "tls-authz": "" });
    await src.q.execute("migrate", { uri: `tcp:127.0.0.1:${dst.port}` });
    await waitStatus(src.q, ["completed"]);
    await waitStatus(dst.q, ["completed"]);
    dst.c.type("x");
    await dst.c.waitFor("dirty: stopped");
    await dst.c.waitFor(PROMPT);
    expect(await dst.c.command("check")).toMatch(/check: OK pages=\d+/);
  }, 120_000);

  it("fails cleanly with mismatched credentials: the source runs on, the destination waits for the right one", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    const dst = await destination(dir, disk, pki.clientDn);
    // A source whose CA did not sign the destination's certificate refuses it.
    const src = await source(dir, disk, pki.wrongCaClientDir);
    await src.q.execute("migrate", { uri: `tcp:127.0.0.1:${dst.port}` });
    const failed = await waitStatus(src.q, ["failed"]);
    expect(failed["error-desc"]).toBe("The certificate hasn't got a known issuer");
    expect(await src.q.execute("query-status")).toMatchObject({ status: "running", running: true });
    expect(await dst.q.execute("query-status")).toMatchObject({ status: "inmigrate" });

    // A certificate the CA signed but the authz object does not name: refused by the destination.
    await src.q.execute("object-del", { id: "tls0" });
    await src.q.execute("object-add", { "qom-type": "tls-creds-x509", id: "tls0", dir: pki.otherClientDir, endpoint: "client" });
    await src.q.execute("migrate", { uri: `tcp:127.0.0.1:${dst.port}` });
    await waitStatus(src.q, ["failed"]);
    await dst.c.waitFor(`TLS handshake of an incoming migration failed: TLS x509 authz check for ${pki.otherClientDn} is denied`);
    expect(await src.q.execute("query-status")).toMatchObject({ status: "running", running: true });

    // No credentials by that name: QEMU's words, and still running.
    await src.q.execute("migrate-set-parameters", { "tls-creds": "nosuch" });
    await src.q.execute("migrate", { uri: `tcp:127.0.0.1:${dst.port}` });
    expect((await waitStatus(src.q, ["failed"]))["error-desc"]).toBe("No TLS credentials with id 'nosuch'");

    // The right credentials: the destination was still listening.
    await src.q.execute("object-add", { "qom-type": "tls-creds-x509", id: "good", dir: pki.clientDir, endpoint: "client" });
    await src.q.execute("migrate-set-parameters", { "tls-creds": "good" });
    await src.q.execute("migrate", { uri: `tcp:127.0.0.1:${dst.port}` });
    await waitStatus(src.q, ["completed"]);
    await waitStatus(dst.q, ["completed"]);
    dst.c.type("x");
    await dst.c.waitFor(PROMPT);
    expect(await dst.c.command("check")).toMatch(/check: OK/);
  }, 180_000);

  it("runs postcopy over TLS, return path included, and recovers a broken link with a new TLS handshake", async () => {
    const dir = tempDir();
    const disk = diskCopy();
    const caps = { capabilities: [{ capability: "postcopy-ram" as const, state: true }, { capability: "events" as const, state: true }] };
    const dst = await destination(dir, disk, pki.clientDn);
    await dst.q.execute("migrate-set-capabilities", caps);
    const src = await source(dir, disk, pki.clientDir);
    await src.q.execute("migrate-set-capabilities", caps);
    await src.q.execute("migrate-set-parameters", { "max-bandwidth": 4 << 20, "max-postcopy-bandwidth": 64 << 10 });
    await src.q.execute("migrate", { uri: `tcp:127.0.0.1:${dst.port}` });
    await waitStatus(src.q, ["active"]);
    await src.q.execute("migrate-start-postcopy");
    await waitStatus(src.q, ["postcopy-active"]);
    // The destination runs the guest once the package is in; a break before that is a failed
    // switch-over (QEMU's postcopy_start errors then too), not a pause.
    await migrationEvent(dst.q, "postcopy-active");
    await src.q.execOob("migrate-pause");
    await waitStatus(src.q, ["postcopy-paused"]);
    await migrationEvent(dst.q, "postcopy-paused");
    // migrate-recover listens with the same credentials and authz; the source handshakes again.
    // (A fixed free port: the one the kernel would choose shows only in-band, behind the fault.)
    const port = await freePort();
    expect(await dst.q.execOob("migrate-recover", { uri: `tcp:127.0.0.1:${port}` })).toEqual({});
    await src.q.execute("migrate-set-parameters", { "max-postcopy-bandwidth": 0 });
    await src.q.execute("migrate", { uri: `tcp:127.0.0.1:${port}`, resume: true });
    await waitStatus(src.q, ["completed"]);
    await waitStatus(dst.q, ["completed"]);
    dst.c.type("x");
    await dst.c.waitFor("dirty: stopped");
    await dst.c.waitFor(PROMPT);
    expect(await dst.c.command("check")).toMatch(/check: OK pages=\d+/);
  }, 120_000);
});
