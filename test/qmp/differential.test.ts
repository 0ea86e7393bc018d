// The same requests, good and bad, sent to QEMU 7.2 and to minivm: the replies and events
// must be the same text (timestamps aside). Where minivm differs on purpose, the test says so.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IDLE_LOOP, writeTinyElf } from "../helpers/elf.js";
import { requireTool } from "../helpers/interop.js";
import { RawQmp, waitForQmpSocket } from "../helpers/raw-qmp.js";
import { startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");
// Both machines load the same guest, one that sleeps in WFI forever, so that `cont` has
// something harmless to run and memory reads have something to compare.
let KERNEL = "";

/** Timestamps and host thread ids differ between any two runs. */
function normalise(lines: string[]): string[] {
  return lines.map((l) =>
    l
      .replace(/"timestamp": \{"seconds": \d+, "microseconds": \d+\}/, '"timestamp": T')
      .replace(/"thread-id": \d+/, '"thread-id": TID')
      .replace(/thread_id=\d+/, "thread_id=TID"),
  );
}

/** Run before negotiation on a fresh connection. */
const BEFORE_NEGOTIATION: string[] = [
  '{"execute": "query-status", "id": 1}',
  '{"execute": "nosuch"}',
  '{"exec-oob": "qmp_capabilities", "id": 2}',
  '{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}, "id": 3}',
  '{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}, "id": 4}',
  '{"execute": "qmp_capabilities", "arguments": {"bogus": 1}, "id": 5}',
];

/** Run in order on one negotiated (oob enabled) connection to a VM started with -S. */
const NEGOTIATED: string[] = [
  "[1, 2]",
  '"just a string"',
  '{"id": 1}',
  '{"execute": 1, "id": 2}',
  '{"execute": "query-status", "arguments": [], "id": 3}',
  '{"execute": "query-status", "foo": 1, "id": 4}',
  '{"execute": "query-status", "exec-oob": "query-status", "id": 5}',
  '{"execute": "nosuch", "id": "a"}',
  '{"exec-oob": "query-status", "id": 6}',
  '{"exec-oob": "nosuch", "id": 7}',
  '{"execute": "human-monitor-command", "id": 8}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": 1}, "id": 9}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "info status", "foo": 1}, "id": 10}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "info status", "cpu-index": "x"}, "id": 11}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": 5, "foo": 1}, "id": 12}',
  '{"execute": "query-status", "arguments": {"x": 1}, "id": 13}',
  '{"execute": "qmp_capabilities", "id": 14}',
  "{]",
  '{"a" 1}',
  "[1 2]",
  '{"a": 1 "b": 2}',
  "{1: 2}",
  '{"execute": tru}',
  '{"execute": "\\x"}',
  "@",
  '{"execute": "query-status", "id": 1.5e3}',
  '{"execute": "query-status", "id": {"a": [1, 2], "b": "c"}}',
  '{"execute": "query-status", "id": null}',
  '{"execute": "query-status", "id": 18446744073709551615}',
  '{"execute": "query-status", "id": -9223372036854775808}',
  "{'execute': 'query-status', 'id': 'single'}",
  '{"execute": "query-status", "id": "caf\\u00e9 \\ud83d\\ude00"}',
  '{"execute": "query-name", "id": 15}',
  '{"execute": "stop", "id": 16}',
  '{"execute": "query-status", "id": 17}',
  '{"execute": "cont", "id": 18}',
  '{"execute": "cont", "id": 19}',
  '{"execute": "query-status", "id": 20}',
  '{"execute": "stop", "id": 21}',
  '{"execute": "system_reset", "id": 22}',
  '{"execute": "query-status", "id": 23}',
  '{"execute": "system_powerdown", "id": 24}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "info status"}, "id": 25}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "nosuch"}, "id": 26}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "info nosuch"}, "id": 27}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "stop"}, "id": 28}',
  '{"execute": "query-commands", "arguments": {"x": true}, "id": 29}',
  '{"execute": "query-cpus-fast", "id": 30}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "info cpus"}, "id": 31}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /8xw 0x1000"}, "id": 32}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "x /2xw 0x1000"}, "id": 33}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /2xw 0x50000000"}, "id": 34}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /4dh 0x1000"}, "id": 35}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /3ub 0x1000"}, "id": 36}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /10ob 0x1000"}, "id": 37}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /2xg 0x1000"}, "id": 38}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp 0x80000000"}, "id": 39}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /6i 0x1000"}, "id": 40}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "x /2i 0x80000000"}, "id": 41}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "xp 0x1000"}, "id": 42}',
];

async function exchangeAll(path: string): Promise<{ before: string[][]; after: string[][] }> {
  const fresh = await RawQmp.open(path);
  const before: string[][] = [];
  for (const text of BEFORE_NEGOTIATION) before.push(normalise(await fresh.exchange(text)));
  fresh.close();
  const w = await RawQmp.open(path);
  await w.exchange('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}');
  const after: string[][] = [];
  for (const text of NEGOTIATED) after.push(normalise(await w.exchange(text)));
  w.close();
  return { before, after };
}

describe.skipIf(!haveQemu)("QMP differential test against QEMU 7.2", () => {
  let qemu: ChildProcess;
  let vm: VmProcess;
  let qemuPath: string;
  beforeAll(async () => {
    const dir = tempDir("minivm-qemu-");
    qemuPath = join(dir, "qemu.sock");
    KERNEL = writeTinyElf(join(dir, "idle.elf"), IDLE_LOOP);
    qemu = spawn("qemu-system-riscv32", ["-M", "virt", "-m", "128M", "-bios", "none", "-kernel", KERNEL, "-S", "-display", "none", "-nodefaults", "-qmp", `unix:${qemuPath},server=on,wait=off`], { stdio: "ignore" });
    vm = await startVm(["-m", "128M", "--bios", "none", "--kernel", KERNEL]);
    await waitForQmpSocket(qemuPath);
  }, 60_000);
  afterAll(async () => {
    qemu?.kill("SIGKILL");
    await vm?.kill();
  });

  it(`gives the same replies and events, text for text, to ${BEFORE_NEGOTIATION.length + NEGOTIATED.length} requests`, async () => {
    const q = await exchangeAll(qemuPath);
    const m = await exchangeAll(vm.qmpPath);
    for (let i = 0; i < BEFORE_NEGOTIATION.length; i++) {
      expect({ input: BEFORE_NEGOTIATION[i], out: m.before[i] }).toEqual({ input: BEFORE_NEGOTIATION[i], out: q.before[i] });
    }
    for (let i = 0; i < NEGOTIATED.length; i++) {
      expect({ input: NEGOTIATED[i], out: m.after[i] }).toEqual({ input: NEGOTIATED[i], out: q.after[i] });
    }
  });

  it("differs on purpose only where minivm keeps the 2018 seed's control member", async () => {
    const text = '{"execute": "query-name", "control": {"run-oob": false}, "id": "ctl"}';
    const q = await RawQmp.open(qemuPath);
    await q.exchange('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}');
    expect(await q.exchange(text)).toEqual(['{"id": "ctl", "error": {"class": "GenericError", "desc": "QMP input member \'control\' is unexpected"}}']);
    q.close();
    const m = await RawQmp.open(vm.qmpPath);
    await m.exchange('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}');
    expect(await m.exchange(text)).toEqual(['{"return": {}, "id": "ctl"}']);
    m.close();
  });
});
