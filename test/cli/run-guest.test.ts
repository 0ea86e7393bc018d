// Guests run by the real binary: serial output through stdio, the process exit status, and
// the SHUTDOWN event a guest's poweroff raises, compared with QEMU where QEMU can run it.
import { execFile, spawnSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { tinyElf, writeTinyElf } from "../helpers/elf.js";
import { requireTool } from "../helpers/interop.js";
import { BIN, startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const run = promisify(execFile);
const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");
const ELF_DIR = join(import.meta.dirname, "../../firmware/tests/build");

// lui t0,0x100; lui t1,0x33; addi t1,t1,0x333; sw t1,0(t0); j .  -> finisher FAIL with code 3
const EXIT_3 = [0x001002b7, 0x00033337, 0x33330313, 0x0062a023, 0x0000006f];

let vm: VmProcess | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
});

function minivmRun(kernel: string): { stdout: string; status: number | null } {
  const r = spawnSync(process.execPath, [BIN, "run", "--bios", "none", "--kernel", kernel, "-m", "128M"], { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] });
  return { stdout: r.stdout, status: r.status };
}

function qemuRun(kernel: string): { stdout: string; status: number | null } {
  const r = spawnSync("qemu-system-riscv32", ["-M", "virt", "-m", "128M", "-bios", "none", "-kernel", kernel, "-nographic"], { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] });
  return { stdout: r.stdout, status: r.status };
}

describe("running a guest with minivm run --bios none --kernel", () => {
  it.skipIf(!haveQemu).each(["smoke.elf", "uart.elf"])("prints what QEMU prints and exits as QEMU does for %s", (name) => {
    const kernel = join(ELF_DIR, name);
    const m = minivmRun(kernel);
    const q = qemuRun(kernel);
    expect(m.stdout.length).toBeGreaterThan(0);
    expect(m).toEqual(q);
  });

  it.skipIf(!haveQemu)("ends with the finisher's failure code, as QEMU does", () => {
    const kernel = writeTinyElf(join(tempDir(), "exit3.elf"), EXIT_3);
    expect(minivmRun(kernel).status).toBe(3);
    expect(qemuRun(kernel).status).toBe(3);
  });

  it("tells QMP clients the guest shut itself down before the process ends", async () => {
    vm = await startVm((dir) => ["--bios", "none", "--kernel", writeTinyElf(join(dir, "exit3.elf"), EXIT_3)]);
    const c = await vm.connect();
    const shutdown = c.waitEvent("SHUTDOWN");
    await c.execute("cont");
    // QEMU (since 8.0, which reports what 7.2 did silently) calls a failure code a guest panic.
    expect((await shutdown).data).toEqual({ guest: true, reason: "guest-panic" });
    expect(await vm.exited).toBe(3);
  });

  it("refuses a truncated ELF, saying so", async () => {
    const dir = tempDir();
    const bad = join(dir, "bad.elf");
    // ELF magic, then the file ends inside the header.
    (await import("node:fs")).writeFileSync(bad, tinyElf([0]).subarray(0, 30));
    const err = (await run(process.execPath, [BIN, "run", "--bios", "none", "--kernel", bad]).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/minivm: .*(ELF|elf)/);
  });
});
