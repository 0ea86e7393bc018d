// Running guest ELFs for tests: in-process on minivm's Machine, and on QEMU
// (qemu-system-riscv32 -M virt -bios none) with a timeout, both returning the UART output
// and the exit status.

import { spawnSync } from "node:child_process";
import { Machine } from "../../src/core/machine.js";

export interface RunResult {
  output: string;
  /** Finisher/HTIF exit status, or null when the run did not end (timeout). */
  status: number | null;
}

/** QEMU's CPU model trimmed to what minivm implements (RV32IMA, Zicsr, Zifencei, S, U). */
export const QEMU_CPU = "rv32,c=false,f=false,d=false,h=false,zba=false,zbb=false,zbc=false,zbs=false,sstc=false";

/**
 * Is `tool` installed? A missing tool skips interop tests, unless MINIVM_REQUIRE_INTEROP=1
 * (CI) makes it a failure.
 */
export function hasTool(tool: string, args = ["--version"]): boolean {
  const r = spawnSync(tool, args, { encoding: "utf8" });
  const ok = r.status === 0;
  if (!ok && process.env.MINIVM_REQUIRE_INTEROP === "1") {
    throw new Error(`${tool} is not installed but MINIVM_REQUIRE_INTEROP=1`);
  }
  return ok;
}

export function hasQemu(): boolean {
  return hasTool("qemu-system-riscv32");
}

/** QEMU_CPU with the C extension left on (QEMU's default), for compressed code. */
export const QEMU_CPU_RVC = QEMU_CPU.replace("c=false,", "");

/** Run an ELF in-process; `rvc` matches QEMU_CPU (off) unless asked, as QEMU_CPU_RVC has it. */
export function runOnMinivm(elf: Uint8Array, maxInstructions = 200_000_000, rvc = false): RunResult {
  const chunks: Uint8Array[] = [];
  const m = new Machine({ serialOut: (b) => chunks.push(b.slice()), kernel: elf, rvc });
  let executed = 0;
  let status: number | null = null;
  while (executed < maxInstructions) {
    const r = m.runSlice(1_000_000);
    executed += 1_000_000;
    if (r.kind === "shutdown") {
      status = r.code;
      break;
    }
    if (r.kind === "idle") {
      if (r.wakeAtNs === null) break;
      while (performance.now() * 1e6 < r.wakeAtNs) {
        // busy-wait: tests want determinism more than an idle CPU
      }
    }
    if (r.kind === "reset") m.reset();
  }
  return { output: Buffer.concat(chunks).toString("latin1"), status };
}

export function runOnQemu(elfPath: string, timeoutMs = 20_000): RunResult {
  const r = spawnSync(
    "qemu-system-riscv32",
    [
      "-M", "virt", "-cpu", QEMU_CPU, "-bios", "none", "-m", "128M", "-nographic",
      "-global", "virtio-mmio.force-legacy=false", "-kernel", elfPath,
    ],
    { encoding: "latin1", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
  );
  return { output: r.stdout ?? "", status: r.signal ? null : r.status };
}
