// Shared by the block tests: temp dirs, the real qemu-img when installed, a seeded PRNG.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "minivm-block-"));
  return { dir, path: (n) => join(dir, n), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function which(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
}

/** True when qemu-img can be used; a missing tool fails instead when MINIVM_REQUIRE_INTEROP=1. */
export const haveQemuImg = which("qemu-img");
export const requireInterop = process.env.MINIVM_REQUIRE_INTEROP === "1";
export const interop = haveQemuImg || requireInterop;

export function qemuImg(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync("qemu-img", args, { encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function qemuIo(file: string, fmt: string, cmd: string): void {
  execFileSync("qemu-io", ["-f", fmt, "-c", cmd, file], { stdio: "ignore" });
}

/** xorshift32: reproducible "random" offsets and data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

/** Compiles the project to dist/ once per test file (tsc emits even when other files have type errors). */
let built = false;
export function buildDist(): void {
  if (built) return;
  spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "."], { stdio: "ignore" });
  built = true;
}

/** Guest contents of an image as qemu-img sees them (converted to raw). */
export function qemuRead(file: string, fmt: string, tmp: string): Buffer {
  execFileSync("qemu-img", ["convert", "-f", fmt, "-O", "raw", file, tmp]);
  return readFileSync(tmp);
}
