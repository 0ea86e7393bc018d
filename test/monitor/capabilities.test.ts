// While an in-band command holds the main loop, a new client cannot negotiate: QEMU runs
// qmp_capabilities in-band, through the dispatcher the stuck command holds (monitor/qmp.c).
// The same scenario against QEMU 7.2 (held by dump-guest-memory writing to a FIFO nobody
// reads: QEMU's main thread blocks in open()) and against minivm (held by x-oob-test).
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { createReadStream, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { RawQmp } from "../helpers/raw-qmp.js";
import { startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");

interface Target {
  a: string;
  b: string;
  hold(a: RawQmp): Promise<void>;
  release(a: RawQmp): Promise<void>;
}

/**
 * B negotiates while A's command holds the main loop. Before negotiation B can send nothing
 * that would be answered at once (exec-oob is queued in-band too), so A makes out-of-band
 * round trips through the same monitor thread, which read B's line before them: a reply to
 * B that did not wait would have arrived by then.
 */
async function scenario(t: Target): Promise<{ bLines: string[]; after: string }> {
  const a = await RawQmp.open(t.a);
  await a.negotiate();
  await t.hold(a);
  const b = await RawQmp.open(t.b);
  const bLines: string[] = [];
  let released = false;
  b.send('{"execute": "qmp_capabilities", "id": "caps"}');
  const caps = b.line().then((l) => bLines.push(released ? l : `early: ${l}`));
  for (let i = 0; i < 5; i++) {
    a.send(`{"exec-oob": "migrate-pause", "id": "probe${i}"}`);
    await a.until((l) => l.includes(`"probe${i}"`));
  }
  released = true;
  await t.release(a);
  await caps;
  const after = (await b.exchange('{"execute": "query-status", "id": "st"}')).join("\n");
  a.close();
  b.close();
  return { bLines, after };
}

function expectNegotiationWaited(r: { bLines: string[]; after: string }): void {
  expect(r.bLines).toEqual(['{"return": {}, "id": "caps"}']);
  expect(r.after).toContain('"status": "prelaunch"');
}

let vm: VmProcess | undefined;
let qemu: ChildProcess | undefined;
afterEach(async () => {
  qemu?.kill("SIGKILL");
  qemu = undefined;
  await vm?.kill();
  vm = undefined;
});

describe("qmp_capabilities while the main loop is stuck", () => {
  it("minivm: a new client's negotiation waits for the stuck command, out-of-band still answers", async () => {
    vm = await startVm((dir) => ["--qmp", `unix:${dir}/b.sock,server=on,wait=off`]);
    const r = await scenario({
      a: vm.qmpPath,
      b: join(vm.dir, "b.sock"),
      hold: async (a) => {
        a.send('{"execute": "x-oob-test", "arguments": {"lock": true}, "id": "stuck"}');
        // Until the core thread is inside the command, the main loop is not yet held.
        for (;;) {
          a.send('{"exec-oob": "x-query-bql", "id": "who"}');
          const who = (await a.until((l) => l.includes('"who"'))).pop() ?? "";
          if (who.includes('"holder": "main-loop"')) return;
        }
      },
      release: async (a) => {
        a.send('{"exec-oob": "x-oob-test", "arguments": {"lock": false}, "id": "release"}');
        await a.until((l) => l.includes('"stuck"'));
      },
    });
    expectNegotiationWaited(r);
  });

  it.skipIf(!haveQemu)("QEMU 7.2 does the same: no reply to qmp_capabilities until the main loop is free", async () => {
    const dir = tempDir("minivm-qemu-");
    const fifo = join(dir, "dump.fifo");
    execFileSync("mkfifo", [fifo]);
    const sock = (n: string): string => join(dir, `${n}.sock`);
    qemu = spawn("qemu-system-riscv32", ["-M", "virt", "-bios", "none", "-S", "-display", "none", "-nodefaults", "-qmp", `unix:${sock("a")},server=on,wait=off`, "-qmp", `unix:${sock("b")},server=on,wait=off`], { stdio: "ignore" });
    const pid = qemu.pid as number;
    await expect.poll(async () => RawQmp.open(sock("b")).then((c) => (c.close(), true), () => false), { timeout: 30_000 }).toBe(true);
    let drained: Promise<void> = Promise.resolve();
    const r = await scenario({
      a: sock("a"),
      b: sock("b"),
      hold: async (a) => {
        a.send(JSON.stringify({ execute: "dump-guest-memory", arguments: { paging: false, protocol: `file:${fifo}` }, id: "stuck" }));
        // QEMU's main thread sits in open() of the FIFO until a reader comes.
        await expect.poll(() => readFileSync(`/proc/${pid}/wchan`, "latin1"), { timeout: 30_000 }).toBe("wait_for_partner");
      },
      release: async (a) => {
        drained = new Promise((resolve) => createReadStream(fifo).on("data", () => undefined).on("end", () => resolve()));
        await a.until((l) => l.includes('"stuck"'));
      },
    });
    await drained;
    expectNegotiationWaited(r);
  });
});
