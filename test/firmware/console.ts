// Drive a virtual machine through its serial console on stdin/stdout, as a user at a
// terminal would: wait for text to appear, type a line, read the answer. Works for
// qemu-system-riscv32 and for `minivm run` alike.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const FIRMWARE_DIR = join(import.meta.dirname, "../../firmware/build");
export const SBI_ELF = join(FIRMWARE_DIR, "minivm-sbi.elf");
export const GUEST_ELF = join(FIRMWARE_DIR, "guest.elf");
export const DISK_IMG = join(FIRMWARE_DIR, "disk.img");
export const PROMPT = "minivm$ ";

const scratchDirs: string[] = [];

/** A writable copy of the shipped disk, so tests never change the committed image. */
export function diskCopy(from = DISK_IMG): string {
  const dir = mkdtempSync(join(tmpdir(), "minivm-fw-"));
  scratchDirs.push(dir);
  const path = join(dir, "disk.img");
  copyFileSync(from, path);
  return path;
}

/** Removes the copies diskCopy() made; call once the VMs using them have ended. */
export function removeDiskCopies(): void {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export class SerialConsole {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | string>;
  private text = "";
  private mark = 0;
  private waiters: Array<() => void> = [];

  constructor(command: string, args: string[]) {
    this.proc = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    const take = (d: Buffer): void => {
      // Terminals get "\r\n"; tests read lines.
      this.text += d.toString("latin1").replace(/\r/g, "");
      for (const w of this.waiters.splice(0)) w();
    };
    this.proc.stdout?.on("data", take);
    this.proc.stderr?.on("data", take);
    this.exited = new Promise((resolve) =>
      this.proc.on("exit", (code, signal) => {
        resolve(code ?? signal ?? -1);
        for (const w of this.waiters.splice(0)) w();
      }),
    );
  }

  /** Everything printed so far. */
  output(): string {
    return this.text;
  }

  /**
   * Resolves with the output from the last mark up to and including the first `expected`
   * after it, and moves the mark past it. Rejects on timeout or if the process ends first.
   */
  async waitFor(expected: string | RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.text.slice(this.mark);
      const m = typeof expected === "string" ? { index: rest.indexOf(expected), length: expected.length } : (() => {
        const r = expected.exec(rest);
        return r ? { index: r.index, length: r[0].length } : { index: -1, length: 0 };
      })();
      if (m.index >= 0) {
        const seen = rest.slice(0, m.index + m.length);
        this.mark += m.index + m.length;
        return seen;
      }
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`exited before printing ${String(expected)}; output:\n${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${String(expected)}; output:\n${this.text}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  type(text: string): void {
    this.proc.stdin?.write(text);
  }

  /** Types a command line and returns what it printed before the next prompt. */
  async command(line: string, timeoutMs = 30_000): Promise<string> {
    this.type(`${line}\n`);
    const seen = await this.waitFor(PROMPT, timeoutMs);
    return seen.slice(0, -PROMPT.length);
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    await this.exited;
  }
}
