// The migration commands sent to QEMU 7.2 and to minivm, good and bad: replies and events must
// be the same text (timestamps aside). Only what both can do without a migration engine is
// compared here: capabilities, parameters, URI errors and wrong states.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IDLE_LOOP, writeTinyElf } from "../helpers/elf.js";
import { requireTool } from "../helpers/interop.js";
import { RawQmp, waitForQmpSocket } from "../helpers/raw-qmp.js";
import { startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");

function normalise(lines: string[]): string[] {
  return lines.map((l) => l.replace(/"timestamp": \{"seconds": \d+, "microseconds": \d+\}/, '"timestamp": T'));
}

const hmp = (line: string): string => JSON.stringify({ execute: "human-monitor-command", arguments: { "command-line": line } });
const setCaps = (caps: Record<string, boolean>): string =>
  JSON.stringify({ execute: "migrate-set-capabilities", arguments: { capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })) } });
const setParams = (p: Record<string, unknown>): string => JSON.stringify({ execute: "migrate-set-parameters", arguments: p });
const migrate = (uri: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ execute: "migrate", arguments: { uri, ...extra } });

/** On a VM started with -S and no -incoming. */
const SOURCE: string[] = [
  '{"execute": "query-migrate"}',
  '{"execute": "query-migrate-capabilities"}',
  '{"execute": "query-migrate-parameters"}',
  hmp("info migrate"),
  hmp("info migrate_capabilities"),
  hmp("info migrate_parameters"),
  '{"execute": "migrate_cancel"}',
  '{"execute": "migrate-continue", "arguments": {"state": "pre-switchover"}}',
  '{"execute": "migrate-continue", "arguments": {"state": "none"}}',
  '{"execute": "migrate-start-postcopy"}',
  '{"execute": "migrate-incoming", "arguments": {"uri": "tcp:127.0.0.1:0"}}',
  '{"execute": "migrate-recover", "arguments": {"uri": "tcp:127.0.0.1:0"}}',
  '{"exec-oob": "migrate-recover", "arguments": {"uri": "tcp:127.0.0.1:0"}}',
  '{"execute": "migrate-pause"}',
  '{"exec-oob": "migrate-pause"}',
  migrate("tcp:127.0.0.1:1", { resume: true }),
  // Capabilities: each implemented one on and off, the rules QEMU 7.2 enforces, bad input.
  setCaps({ events: true, "auto-converge": true, "pause-before-switchover": true, "return-path": true, "validate-uuid": true }),
  setCaps({ "postcopy-ram": true }),
  '{"execute": "query-migrate-capabilities"}',
  hmp("info migrate_capabilities"),
  '{"execute": "migrate-start-postcopy"}',
  setCaps({ "postcopy-ram": true, "x-ignore-shared": true }),
  setCaps({ "postcopy-preempt": true, "postcopy-ram": false }),
  setCaps({ "postcopy-preempt": true }),
  setCaps({ "postcopy-preempt": true, compress: true }),
  setCaps({ multifd: true, compress: true }),
  setCaps({ "zero-copy-send": true }),
  setCaps({ "background-snapshot": true }),
  setCaps({ "postcopy-ram": false, "auto-converge": false, "pause-before-switchover": false, "return-path": false, "validate-uuid": false }),
  '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "nosuch", "state": true}]}}',
  '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "events"}]}}',
  '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": []}}',
  hmp("migrate_set_capability events"),
  hmp("migrate_set_capability nosuch on"),
  hmp("migrate_set_capability events maybe"),
  hmp("migrate_set_capability auto-converge on"),
  hmp("migrate_set_capability auto-converge off"),
  // Parameters: valid values, each bound of QEMU's checks, the visitors' errors.
  setParams({ "downtime-limit": 2000001 }),
  setParams({ "downtime-limit": -1 }),
  setParams({ "downtime-limit": "x" }),
  setParams({ "max-bandwidth": 1.5 }),
  setParams({ "cpu-throttle-initial": 0 }),
  setParams({ "cpu-throttle-initial": 100 }),
  setParams({ "cpu-throttle-initial": 256 }),
  setParams({ "cpu-throttle-increment": 0 }),
  setParams({ "cpu-throttle-increment": 100 }),
  setParams({ "throttle-trigger-threshold": 0 }),
  setParams({ "throttle-trigger-threshold": 101 }),
  setParams({ "max-cpu-throttle": 10 }),
  setParams({ "max-cpu-throttle": 100 }),
  setParams({ "cpu-throttle-initial": 50, "max-cpu-throttle": 40 }),
  setParams({ "announce-initial": 100001 }),
  setParams({ "announce-max": 100001 }),
  setParams({ "announce-rounds": 1001 }),
  setParams({ "announce-step": 0 }),
  setParams({ "announce-step": 10001 }),
  setParams({ "compress-level": 10 }),
  setParams({ "compress-threads": 0 }),
  setParams({ "decompress-threads": 0 }),
  setParams({ "multifd-channels": 0 }),
  setParams({ "multifd-zlib-level": 10 }),
  setParams({ "xbzrle-cache-size": 1024 }),
  setParams({ "x-checkpoint-delay": 4294967296 }),
  setParams({ nosuch: 1 }),
  setParams({ "tls-creds": null }),
  setParams({ "tls-creds": "abc", "tls-hostname": null, "tls-authz": "z" }),
  setParams({ "cpu-throttle-tailslow": true, "max-postcopy-bandwidth": 1000, "x-checkpoint-delay": 5, "block-incremental": true, "multifd-compression": "zlib" }),
  setParams({
    "cpu-throttle-initial": 30, "cpu-throttle-increment": 5, "throttle-trigger-threshold": 60, "max-cpu-throttle": 90, "announce-initial": 1,
    "announce-max": 2, "announce-rounds": 3, "announce-step": 4, "max-bandwidth": 1000000, "downtime-limit": 2000000, "xbzrle-cache-size": 8192,
  }),
  '{"execute": "query-migrate-parameters"}',
  hmp("info migrate_parameters"),
  hmp("migrate_set_parameter downtime-limit 500"),
  hmp("migrate_set_parameter downtime-limit x"),
  hmp("migrate_set_parameter downtime-limit 3000000"),
  hmp("migrate_set_parameter max-bandwidth 10"),
  hmp("migrate_set_parameter max-bandwidth zz"),
  hmp("migrate_set_parameter max-postcopy-bandwidth 10k"),
  hmp("migrate_set_parameter cpu-throttle-initial 300"),
  hmp("migrate_set_parameter cpu-throttle-initial 0"),
  hmp("migrate_set_parameter cpu-throttle-tailslow yes"),
  hmp("migrate_set_parameter nosuch 1"),
  hmp("migrate_set_parameter multifd-compression foo"),
  hmp("migrate_set_parameter xbzrle-cache-size 1M"),
  hmp("migrate_set_parameter downtime-limit"),
  hmp("info migrate_parameters"),
  // Bad URIs, with the events capability on: setup then failed, and what query-migrate says.
  migrate("foo:bar"),
  '{"execute": "query-migrate"}',
  hmp("info migrate"),
  migrate("tcp:foo"),
  '{"execute": "query-migrate"}',
  hmp("info migrate"),
  migrate("tcp::"),
  migrate("tcp:127.0.0.1:"),
  migrate("unix:"),
  migrate("fd:foo"),
  '{"execute": "query-migrate"}',
  migrate(""),
  hmp("migrate"),
  hmp("migrate -d nosuch"),
  '{"execute": "migrate_cancel"}',
  '{"execute": "query-migrate"}',
];

/** On a VM started with -S -incoming defer. */
const DESTINATION: string[] = [
  '{"execute": "query-status"}',
  '{"execute": "query-migrate"}',
  '{"execute": "cont"}',
  '{"execute": "query-status"}',
  '{"execute": "stop"}',
  '{"execute": "query-status"}',
  hmp("info status"),
  migrate("tcp:127.0.0.1:1"),
  hmp("migrate -d tcp:127.0.0.1:1"),
  '{"execute": "migrate-incoming", "arguments": {"uri": "foo:bar"}}',
  '{"execute": "query-migrate"}',
  hmp("info migrate"),
];

async function exchangeAll(path: string, requests: string[]): Promise<string[][]> {
  const w = await RawQmp.open(path);
  await w.negotiate();
  const out: string[][] = [];
  for (const text of requests) out.push(normalise(await w.exchange(text)));
  w.close();
  return out;
}

function compare(requests: string[], q: string[][], m: string[][]): void {
  for (let i = 0; i < requests.length; i++) {
    expect({ input: requests[i], out: m[i] }).toEqual({ input: requests[i], out: q[i] });
  }
}

describe.skipIf(!haveQemu)("migration QMP and HMP, differential against QEMU 7.2", () => {
  const qemus: ChildProcess[] = [];
  const vms: VmProcess[] = [];
  let kernel = "";
  let dir = "";

  async function startBoth(name: string, extra: string[]): Promise<{ qemuPath: string; vm: VmProcess }> {
    const qemuPath = join(dir, `${name}.sock`);
    qemus.push(
      spawn(
        "qemu-system-riscv32",
        ["-M", "virt", "-m", "128M", "-bios", "none", "-kernel", kernel, "-S", "-display", "none", "-nodefaults", "-qmp", `unix:${qemuPath},server=on,wait=off`, ...extra],
        { stdio: "ignore" },
      ),
    );
    const vm = await startVm(["-m", "128M", "--bios", "none", "--kernel", kernel, ...extra.map((a) => (a === "-incoming" ? "--incoming" : a))]);
    vms.push(vm);
    await waitForQmpSocket(qemuPath);
    return { qemuPath, vm };
  }

  beforeAll(() => {
    dir = tempDir("minivm-mig-qemu-");
    kernel = writeTinyElf(join(dir, "idle.elf"), IDLE_LOOP);
  });
  afterAll(async () => {
    for (const q of qemus) q.kill("SIGKILL");
    await Promise.all(vms.map((v) => v.kill()));
  });

  it(`answers ${SOURCE.length} migration requests on a source as QEMU does, text for text`, async () => {
    const { qemuPath, vm } = await startBoth("src", []);
    compare(SOURCE, await exchangeAll(qemuPath, SOURCE), await exchangeAll(vm.qmpPath, SOURCE));
  }, 60_000);

  it(`answers ${DESTINATION.length} requests on an -incoming defer destination as QEMU does`, async () => {
    const { qemuPath, vm } = await startBoth("dst", ["-incoming", "defer"]);
    compare(DESTINATION, await exchangeAll(qemuPath, DESTINATION), await exchangeAll(vm.qmpPath, DESTINATION));
  }, 60_000);
});
