import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { startVm, type VmProcess } from "../helpers/vm.js";

let vm: VmProcess | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
});

function statusRequests(from: number, count: number): string {
  let text = "";
  for (let i = from; i < from + count; i++) text += `{"execute": "query-status", "id": "q${i}"}`;
  return text;
}

describe("in-band queue", () => {
  it("suspends reading when 8 in-band requests are queued, losing nothing (queue-full=suspend)", async () => {
    vm = await startVm();
    const a = await vm.connect();
    const b = await vm.connect();
    const events: string[] = [];
    a.onEvent = (e) => events.push(e.event);
    const lines: string[] = [];
    a.onLine = (l) => lines.push(l);
    const locked = a.execute("x-oob-test", { lock: true });
    // The stuck command has left the queue; these 8 fill it and suspend a's input, so the
    // exec-oob behind them stays unread, exactly as QEMU documents.
    const replies = Array.from({ length: 8 }, (_, i) => a.sendWithId(statusRequests(i, 1), `q${i}`));
    const stalledUnlock = a.sendWithId('{"exec-oob": "x-oob-test", "arguments": {"lock": false}, "id": "stalled"}', "stalled");
    // Another monitor is not suspended: its OOB command releases the lock.
    await b.execOob("x-oob-test", { lock: false });
    await locked;
    const all = await Promise.all(replies);
    expect(all.map((r) => ("return" in r ? (r.return as { status: string }).status : "error"))).toEqual(Array(8).fill("prelaunch"));
    // Once the queue drained, a's input resumed and the stalled OOB request ran too.
    expect(await stalledUnlock).toEqual({ return: {}, id: "stalled" });
    expect(events).not.toContain("COMMAND_DROPPED");
    // Drain the semaphore the late unlock posted, so it cannot leak into other checks.
    await a.execute("x-oob-test", { lock: true });
    a.close();
    b.close();
  });

  it("drops the 9th queued request with COMMAND_DROPPED when queue-full=drop (the 2018 seed)", async () => {
    vm = await startVm([], { qmpSuffix: ",queue-full=drop" });
    const a = await vm.connect();
    const dropped: unknown[] = [];
    a.onEvent = (e) => {
      if (e.event === "COMMAND_DROPPED") dropped.push(e.data);
    };
    const locked = a.execute("x-oob-test", { lock: true });
    const replies = Array.from({ length: 8 }, (_, i) => a.sendWithId(statusRequests(i, 1), `q${i}`));
    a.sendRaw(statusRequests(8, 2), false);
    const unlock = a.execOob("x-oob-test", { lock: false });
    await unlock;
    await locked;
    expect((await Promise.all(replies)).length).toBe(8);
    await expect.poll(() => dropped).toEqual([
      { id: "q8", reason: "queue-full" },
      { id: "q9", reason: "queue-full" },
    ]);
    a.close();
  });

  it("serves several monitors at once, round-robin, and broadcasts events to all of them", async () => {
    vm = await startVm((dir) => [
      "--qmp", "tcp:127.0.0.1:0,server=on,wait=off",
      "-chardev", `socket,id=mon2,path=${dir}/mon2.sock,server=on,wait=off`,
      "-mon", "chardev=mon2,mode=control",
    ]);
    expect(vm.addresses).toHaveLength(3);
    const clients = await Promise.all(vm.addresses.map((addr) => vm!.connect({}, addr)));
    const seen = clients.map(() => [] as string[]);
    clients.forEach((c, i) => (c.onEvent = (e) => seen[i]!.push(e.event)));
    // Every monitor has a command in flight; all are answered.
    const answers = await Promise.all(clients.map((c) => c.execute("query-status")));
    expect(answers.every((a) => a.status === "prelaunch")).toBe(true);
    await clients[0]!.execute("cont");
    await clients[1]!.execute("stop");
    for (const s of seen) await expect.poll(() => s).toEqual(["RESUME", "STOP"]);
    clients.forEach((c) => c.close());
  });

  it("survives a client that hangs up while its command holds the lock", async () => {
    vm = await startVm();
    const a = await vm.connect();
    const b = await vm.connect();
    a.sendRaw('{"execute": "x-oob-test", "arguments": {"lock": true}}' + statusRequests(0, 3), false);
    // Wait (out of band) until a's command holds the lock, then hang up under it.
    while ((await b.execOob("x-query-bql")).holder !== "main-loop");
    const pending = b.execute("query-status");
    a.close();
    await b.execOob("x-oob-test", { lock: false });
    expect((await pending).status).toBe("prelaunch");
    expect((await b.execute("query-name"))).toEqual({});
    b.close();
  });

  it("answers 30 000 pipelined requests, then 30 000 more without growing its memory", async () => {
    vm = await startVm();
    const c = await vm.connect();
    const rss = (): number => {
      const status = readFileSync(`/proc/${vm!.proc.pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    };
    const round = async (n: number): Promise<void> => {
      const batch: Array<Promise<unknown>> = [];
      for (let i = 0; i < n; i++) batch.push(c.execute("query-status"));
      const replies = await Promise.all(batch);
      expect(replies).toHaveLength(n);
    };
    // The first 30 000 bring the heaps of three threads to their working size.
    for (let i = 0; i < 3; i++) await round(10_000);
    const before = rss();
    for (let i = 0; i < 3; i++) await round(10_000);
    const after = rss();
    // A leak of 1 KiB per request would add 30 MiB; garbage-collector slack stays well below.
    expect(after - before).toBeLessThan(20 * 1024 * 1024);
    c.close();
  });
});
