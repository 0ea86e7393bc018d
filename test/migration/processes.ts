// The minivm processes and QMP clients a migration test starts, ended after each test.

import { afterAll, afterEach } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { removeDiskCopies, SerialConsole } from "../firmware/console.js";
import { BIN } from "../helpers/vm.js";

const running: SerialConsole[] = [];
const clients: QmpClient[] = [];

/** Register the clean-up hooks in the calling test file. */
export function endProcessesAfterEach(): void {
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const vm of running.splice(0)) await vm.kill();
  });
  afterAll(() => removeDiskCopies());
}

/** `minivm run ARGS`, its console captured; killed after the test. */
export function vm(args: string[]): SerialConsole {
  return track(new SerialConsole(process.execPath, [BIN, "run", ...args]));
}

/** Any process to end after the test (QEMU, say). */
export function track(c: SerialConsole): SerialConsole {
  running.push(c);
  return c;
}

/** A QMP client on a unix socket path, closed after the test. */
export async function qmp(path: string): Promise<QmpClient> {
  const c = await QmpClient.connect(`unix:${path}`);
  clients.push(c);
  return c;
}

/** A client to close after the test. */
export function keep(c: QmpClient): QmpClient {
  clients.push(c);
  return c;
}

/** Polls query-migrate until the status is one of `want`; a failure on the way throws with error-desc. */
export async function waitMigration<T extends { status?: string; "error-desc"?: string }>(c: QmpClient, want: string[], timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await c.execute("query-migrate")) as T;
    if (info.status !== undefined && want.includes(info.status)) return info;
    if (info.status === "failed" && !want.includes("failed")) throw new Error(`migration failed: ${info["error-desc"] ?? "?"}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${want.join("|")}: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
