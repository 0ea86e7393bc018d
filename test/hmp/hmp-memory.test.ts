// HMP's memory dumps where nothing answers, and without an address: the same text as QEMU 7.2.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IDLE_LOOP, writeTinyElf } from "../helpers/elf.js";
import { requireTool } from "../helpers/interop.js";
import { RawQmp, waitForQmpSocket } from "../helpers/raw-qmp.js";
import { startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");

const LINES = ["xp /4x 0xffffff00", "xp /4xw 0x0fffff8", "x /2x 0xfffffff0", "xp /8xb 0x80000000", "xp", "x"];

async function hmpAll(path: string): Promise<string[]> {
  const c = await RawQmp.open(path);
  await c.exchange('{"execute": "qmp_capabilities"}');
  const out: string[] = [];
  for (const line of LINES) {
    out.push((await c.exchange(JSON.stringify({ execute: "human-monitor-command", arguments: { "command-line": line } }))).join("\n"));
  }
  c.close();
  return out;
}

describe.skipIf(!haveQemu)("HMP x/xp against QEMU 7.2", () => {
  let qemu: ChildProcess;
  let vm: VmProcess;
  let qemuPath: string;
  beforeAll(async () => {
    const dir = tempDir("minivm-qemu-");
    qemuPath = join(dir, "qemu.sock");
    const kernel = writeTinyElf(join(dir, "idle.elf"), IDLE_LOOP);
    qemu = spawn("qemu-system-riscv32", ["-M", "virt", "-bios", "none", "-kernel", kernel, "-S", "-display", "none", "-nodefaults", "-qmp", `unix:${qemuPath},server=on,wait=off`], { stdio: "ignore" });
    vm = await startVm(["--bios", "none", "--kernel", kernel]);
    await waitForQmpSocket(qemuPath);
  }, 60_000);
  afterAll(async () => {
    qemu?.kill("SIGKILL");
    await vm?.kill();
  });

  it("says 'Cannot access memory' after the line's address, and QEMU's usage text without an address", async () => {
    const q = await hmpAll(qemuPath);
    const m = await hmpAll(vm.qmpPath);
    expect(q[0]).toContain("00000000ffffff00: Cannot access memory");
    for (let i = 0; i < LINES.length; i++) expect({ line: LINES[i], out: m[i] }).toEqual({ line: LINES[i], out: q[i] });
  });
});
