// Shared by the block tests: temp dirs, the real qemu-img when installed, a seeded PRNG.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll } from "vitest";
import { IoPool } from "../../src/block/io-pool.js";
import { imgRun } from "../../src/cli/img.js";

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
export { rng } from "../helpers/rng.js";

/**
 * Compiles the block layer (and what it imports) to a private directory under
 * node_modules/.cache, once per test file, and returns it. Private so that test files running
 * in parallel, or someone else's build of dist/, never see half-written output; under
 * node_modules so that `piscina` still resolves from the compiled files.
 */
let built: string | null = null;
export function buildDist(): string {
  if (built) return built;
  const out = join("node_modules", ".cache", `minivm-block-test-${process.pid}-${Date.now()}`);
  const r = spawnSync(
    process.execPath,
    ["node_modules/typescript/bin/tsc", "src/block/io-pool.ts", "src/block/image.ts", "--outDir", out, "--rootDir", ".", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--strict", "--skipLibCheck", "--types", "node"],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  built = resolve(out);
  return built;
}

/** Removes what buildDist compiled (call from afterAll). */
export function cleanupDist(): void {
  if (built) rmSync(built, { recursive: true, force: true });
  built = null;
}

/** Guest contents of an image as qemu-img sees them (converted to raw). */
export function qemuRead(file: string, fmt: string, tmp: string): Buffer {
  execFileSync("qemu-img", ["convert", "-f", fmt, "-O", "raw", file, tmp]);
  return readFileSync(tmp);
}

export interface ImgResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * For a test file that runs `minivm img` in-process: an I/O pool and a scratch directory,
 * both released after the file's tests, and `img(...argv)` capturing what it prints.
 */
export function useImg(): { pool: IoPool; t: ReturnType<typeof tempDir>; img: (...argv: string[]) => Promise<ImgResult> } {
  const pool = new IoPool();
  const t = tempDir();
  afterAll(async () => {
    await pool.close();
    t.cleanup();
  });
  const img = async (...argv: string[]): Promise<ImgResult> => {
    let stdout = "";
    let stderr = "";
    const status = await imgRun(argv, { out: (s) => (stdout += s), err: (s) => (stderr += s) }, pool);
    return { status, stdout, stderr };
  };
  return { pool, t, img };
}
