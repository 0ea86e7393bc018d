// Starting the teaching guest on minivm or on QEMU 7.2 for the migration benchmarks: the same
// disk, firmware, RAM size and QMP socket on both, the serial console on a pipe so a benchmark
// can type into the guest and wait for its answers.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { QmpClient } from "../src/qmp/client.js";

const repo = process.cwd();
export const PROMPT = "minivm$ ";

export type Vmm = "minivm" | "qemu";

export interface Guest {
  proc: ChildProcess;
  out: () => string;
}

export function launch(vmm: Vmm, memory: string, disk: string, qmpPath: string, incoming: string | null): Guest {
  const qmp = `unix:${qmpPath},server=on,wait=off`;
  const proc =
    vmm === "minivm"
      ? spawn(process.execPath, [join(repo, "bin/minivm.js"), "run", disk, "-m", memory, "--qmp", qmp, ...(incoming ? ["--incoming", incoming] : [])], { stdio: ["pipe", "pipe", "pipe"] })
      : spawn(
          "qemu-system-riscv32",
          ["-M", "virt", "-m", memory, "-bios", join(repo, "firmware/build/minivm-sbi.elf"), "-drive", `file=${disk},if=none,format=raw,id=hd0`, "-device", "virtio-blk-device,drive=hd0", "-global", "virtio-mmio.force-legacy=false", "-nographic", "-monitor", "none", "-serial", "stdio", "-qmp", qmp, ...(incoming ? ["-incoming", incoming] : [])],
          { stdio: ["pipe", "pipe", "pipe"] },
        );
  let text = "";
  const take = (d: Buffer): void => void (text += d.toString("latin1").replace(/\r/g, ""));
  proc.stdout?.on("data", take);
  proc.stderr?.on("data", take);
  return { proc, out: () => text };
}

export async function until(g: Guest, needle: string | RegExp, timeoutMs = 120_000): Promise<void> {
  const t0 = performance.now();
  while (typeof needle === "string" ? !g.out().includes(needle) : !needle.test(g.out())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`no '${String(needle)}' after ${timeoutMs} ms: ${g.out().slice(-300)}`);
    if (g.proc.exitCode !== null) throw new Error(`VM exited: ${g.out().slice(-300)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** QMP on a socket the VM is about to create: retry until it listens. */
export async function connect(path: string, g: Guest): Promise<QmpClient> {
  for (let tries = 0; ; tries++) {
    try {
      return await QmpClient.connect(`unix:${path}`);
    } catch (e) {
      if (tries > 1200 || g.proc.exitCode !== null) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** SIGKILL and wait. */
export async function kill(g: Guest): Promise<void> {
  if (g.proc.exitCode === null && g.proc.signalCode === null) {
    const gone = new Promise((r) => g.proc.once("exit", r));
    g.proc.kill("SIGKILL");
    await gone;
  }
}
