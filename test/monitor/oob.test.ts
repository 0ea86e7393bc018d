import { afterEach, describe, expect, it } from "vitest";
import type { QmpClient } from "../../src/qmp/client.js";
import { startVm, type VmProcess } from "../helpers/vm.js";

let vm: VmProcess | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
});

/** Collect the order in which replies and events arrive, by id or event name. */
function recordOrder(client: QmpClient): string[] {
  const order: string[] = [];
  client.onLine = (line) => {
    const msg = JSON.parse(line) as { id?: unknown; event?: string };
    if (msg.event !== undefined) order.push(`event:${msg.event}`);
    else if (msg.id !== undefined) order.push(String(msg.id));
  };
  return order;
}

describe("out-of-band execution", () => {
  it("answers exec-oob while an in-band x-oob-test holds the BQL, and the OOB reply goes out first", async () => {
    vm = await startVm();
    const c = await vm.connect();
    const order = recordOrder(c);
    const locked = c.sendWithId('{"execute": "x-oob-test", "arguments": {"lock": true}, "id": "lock"}', "lock");
    // An in-band command queued behind the stuck one must wait too.
    const status = c.sendWithId('{"execute": "query-status", "id": "status"}', "status");
    const unlock = c.sendWithId('{"exec-oob": "x-oob-test", "arguments": {"lock": false}, "id": "unlock"}', "unlock");
    expect(await unlock).toEqual({ return: {}, id: "unlock" });
    expect(await locked).toEqual({ return: {}, id: "lock" });
    expect(await status).toMatchObject({ return: { status: "prelaunch", running: false }, id: "status" });
    expect(order).toEqual(["unlock", "lock", "status"]);
    c.close();
  });

  it("accepts the 2018 seed's control run-oob spelling for the same overtaking", async () => {
    vm = await startVm();
    const c = await vm.connect();
    const order = recordOrder(c);
    const locked = c.sendWithId('{"execute": "x-oob-test", "arguments": {"lock": true}, "id": "lock"}', "lock");
    const unlock = c.sendWithId(
      '{"execute": "x-oob-test", "arguments": {"lock": false}, "control": {"run-oob": true}, "id": "oob"}',
      "oob",
    );
    expect(await unlock).toEqual({ return: {}, id: "oob" });
    expect(await locked).toEqual({ return: {}, id: "lock" });
    expect(order).toEqual(["oob", "lock"]);
    c.close();
  });

  it("names the main loop as the BQL holder, out of band, while the in-band command is stuck", async () => {
    vm = await startVm();
    const a = await vm.connect();
    const b = await vm.connect();
    const locked = a.execute("x-oob-test", { lock: true });
    // Poll out-of-band: these answers come from the monitor thread, which never waits for the lock.
    let info = await b.execOob("x-query-bql");
    while (info.holder !== "main-loop") info = await b.execOob("x-query-bql");
    expect(Number(info["held-ns"])).toBeGreaterThanOrEqual(0);
    // An in-band query from the other client cannot run until the lock is released.
    let inbandAnswered = false;
    const inband = b.execute("query-status").then((r) => {
      inbandAnswered = true;
      return r;
    });
    const again = await b.execOob("x-query-bql");
    expect(again.holder).toBe("main-loop");
    expect(inbandAnswered).toBe(false);
    await b.execOob("x-oob-test", { lock: false });
    await locked;
    expect((await inband).status).toBe("prelaunch");
    const after = await b.execOob("x-query-bql");
    expect(after.threads.find((t) => t.thread === "main-loop")?.acquisitions).toBeGreaterThanOrEqual(2);
    expect(after.threads.map((t) => t.thread)).not.toContain("monitor");
    a.close();
    b.close();
  });

  it("runs an allow-oob command in-band too when it comes with execute, under the BQL", async () => {
    vm = await startVm();
    const c = await vm.connect();
    // In-band, the core thread runs the same handler with the main loop holding the lock.
    expect((await c.execute("x-query-bql")).holder).toBe("main-loop");
    // Out of band nobody holds it: the monitor thread only looks.
    expect((await c.execOob("x-query-bql")).holder).toBeUndefined();
    c.close();
  });

  it("refuses exec-oob for a command without allow-oob in QEMU's words", async () => {
    vm = await startVm();
    const c = await vm.connect();
    expect(await c.executeRaw("query-status", undefined, true)).toMatchObject({
      error: { class: "GenericError", desc: "The command query-status does not support OOB" },
    });
    c.close();
  });

  it("treats exec-oob as an unexpected member when the session did not enable oob", async () => {
    vm = await startVm();
    const c = await vm.connect({ oob: false });
    expect(await c.executeRaw("x-oob-test", { lock: false }, true)).toMatchObject({
      error: { class: "GenericError", desc: "QMP input member 'exec-oob' is unexpected" },
    });
    c.close();
  });
});
