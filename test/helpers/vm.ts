// Start real `minivm run` processes for integration tests and talk to them over real sockets.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QmpClient, type ConnectOptions } from "../../src/qmp/client.js";

export const BIN = join(import.meta.dirname, "../../bin/minivm.js");

export interface VmProcess {
  proc: ChildProcess;
  dir: string;
  /** The first unix QMP socket. */
  qmpPath: string;
  /** Every address the monitors announced, in order. */
  addresses: string[];
  stderr(): string;
  stdout(): string;
  connect(options?: ConnectOptions, address?: string): Promise<QmpClient>;
  /** Resolves with the exit code (or signal name) once the process ends. */
  exited: Promise<number | string>;
  kill(): Promise<void>;
}

export function tempDir(prefix = "minivm-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Start `minivm run` with a unix QMP socket in a fresh directory (plus any extra args) and
 * wait until every monitor has announced its address.
 */
export async function startVm(extraArgs: string[] | ((dir: string) => string[]) = [], opts: { qmpSuffix?: string; noDefaultQmp?: boolean; paused?: boolean } = {}): Promise<VmProcess> {
  const dir = tempDir();
  const qmpPath = join(dir, "qmp.sock");
  const extra = typeof extraArgs === "function" ? extraArgs(dir) : extraArgs;
  const args = [BIN, "run"];
  if (opts.paused ?? true) args.push("-S");
  if (!opts.noDefaultQmp) args.push("--qmp", `unix:${qmpPath},server=on,wait=off${opts.qmpSuffix ?? ""}`);
  args.push(...extra);
  const proc = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] });
  let err = "";
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const expected = (opts.noDefaultQmp ? 0 : 1) + extra.filter((a) => a === "--qmp" || a === "-qmp" || a === "--mon" || a === "-mon").length;
  const addresses: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`minivm did not start: ${err}`)), 30_000);
    const check = (): void => {
      if (addresses.length >= expected) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      for (const m of d.toString().matchAll(/QMP monitor listening on (\S+)/g)) addresses.push(m[1] as string);
      check();
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`minivm exited (${code}) before listening: ${err}`));
    });
    check();
  });
  return {
    proc,
    dir,
    qmpPath,
    addresses,
    stderr: () => err,
    stdout: () => out,
    connect: (options, address) => QmpClient.connect(address ?? `unix:${qmpPath}`, options),
    exited,
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
