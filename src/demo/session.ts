// What every demo shares: a private temp dir, `minivm run` child processes with their guest
// console on a pipe, raw QMP connections that print exactly what goes over the socket, the
// narration, the pause between steps, and the clean-up on exit and on Ctrl-C.

import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";

export interface DemoOptions {
  /** Run straight through without waiting for Enter (CI). */
  nonInteractive: boolean;
  /** Start the dashboard on the first VM and print its URL. */
  dashboard: boolean;
  /** How to start minivm itself: the node binary and the CLI script. */
  node: string;
  cli: string;
  /** The teaching disk the demos copy. */
  disk: string;
  out: (text: string) => void;
}

/** The guest shell's prompt (firmware/guest). */
export const PROMPT = "minivm$ ";

/** One `minivm run` process; its stdout is the guest's serial console. */
export class DemoVm {
  private text = "";
  private mark = 0;
  /** What the VM printed on stderr. */
  errText = "";
  private waiters: Array<() => void> = [];
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    readonly qmpPaths: string[],
  ) {
    const wake = (): void => {
      for (const w of this.waiters.splice(0)) w();
    };
    proc.stdout?.on("data", (d: Buffer) => {
      this.text += d.toString("latin1").replace(/\r/g, "");
      wake();
    });
    proc.stderr?.on("data", (d: Buffer) => {
      this.errText += d.toString();
      wake();
    });
    this.exited = new Promise((resolve) =>
      proc.on("exit", () => {
        wake();
        resolve();
      }),
    );
  }

  private alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get ended(): boolean {
    return !this.alive();
  }

  /** Waits until `get()` finds something; fails if the process ends first. */
  private async until<T>(get: () => T | null, what: string, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = get();
      if (v !== null) return v;
      if (!this.alive()) throw new Error(`${this.name} exited before ${what}:\n${this.errText}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** A line minivm printed on stderr, e.g. the dashboard's URL. */
  async stderrMatch(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    return this.until(() => re.exec(this.errText), String(re), timeoutMs);
  }

  /** Console output from the last mark through `expected`; moves the mark past it. */
  async waitFor(expected: string, timeoutMs = 60_000): Promise<string> {
    return this.until(
      () => {
        const i = this.text.indexOf(expected, this.mark);
        if (i < 0) return null;
        const seen = this.text.slice(this.mark, i + expected.length);
        this.mark = i + expected.length;
        return seen;
      },
      JSON.stringify(expected),
      timeoutMs,
    );
  }

  type(text: string): void {
    this.proc.stdin?.write(text);
  }

  async stop(): Promise<void> {
    if (this.alive()) this.proc.kill("SIGKILL");
    await this.exited;
  }
}

type Json = Record<string, unknown>;

/** A QMP connection that prints every message it sends (→) and every reply it reads (←). */
export class DemoQmp {
  private buffer = "";
  private readonly waiting = new Map<string, (reply: Json) => void>();
  private closed: Error | null = null;
  private nextId = 1;
  private readonly silent = new Set<string>();
  /** Events in arrival order; `event()` looks from `eventMark` on and prints the one it wants. */
  private readonly events: Array<{ line: string; msg: Json }> = [];
  private eventMark = 0;
  private eventWaiters: Array<() => void> = [];

  private constructor(
    private readonly demo: Demo,
    readonly label: string,
    private readonly socket: net.Socket,
    private greeting: (g: Json) => void,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line !== "") this.onLine(line);
      }
    });
    const fail = (e: Error): void => {
      this.closed ??= e;
      for (const w of this.eventWaiters.splice(0)) w();
      for (const w of this.waiting.values()) w({ error: { class: "Closed", desc: e.message } });
      this.waiting.clear();
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("QMP connection closed")));
  }

  /** Connects, reads the greeting, negotiates (with `oob` when asked), printing all of it. */
  static async open(demo: Demo, label: string, path: string, oob: boolean): Promise<DemoQmp> {
    const socket = net.connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    let gotGreeting!: (g: Json) => void;
    const greeting = new Promise<Json>((resolve) => (gotGreeting = resolve));
    const q = new DemoQmp(demo, label, socket, gotGreeting);
    await greeting;
    await q.send({ execute: "qmp_capabilities", arguments: oob ? { enable: ["oob"] } : {} });
    return q;
  }

  private onLine(line: string): void {
    const msg = JSON.parse(line) as Json;
    if ("QMP" in msg) {
      this.demo.print(`  ${this.label} ← ${line}`);
      this.greeting(msg);
      return;
    }
    // Events are printed only when a demo waits for one (`event()`); replies always are.
    if ("event" in msg) {
      this.events.push({ line, msg });
      for (const w of this.eventWaiters.splice(0)) w();
      return;
    }
    const id = msg.id;
    if (typeof id !== "string" || !this.silent.has(id)) this.demo.print(`  ${this.label} ← ${line}`);
    if (typeof id === "string") {
      const w = this.waiting.get(id);
      this.waiting.delete(id);
      w?.(msg);
    }
  }

  /** Sends one request (an id is added when it has none) without waiting for its reply. */
  post(msg: Json): Promise<Json> {
    const id = typeof msg.id === "string" ? msg.id : `${this.label}-${this.nextId++}`;
    const full = { ...msg, id };
    if (this.closed !== null) return Promise.reject(this.closed);
    const reply = new Promise<Json>((resolve) => this.waiting.set(id, resolve));
    const text = JSON.stringify(full);
    this.demo.print(`  ${this.label} → ${text}`);
    this.socket.write(text + "\n");
    return reply;
  }

  /** Sends a request and waits for its reply; an error reply is an exception. */
  async send(msg: Json): Promise<unknown> {
    const reply = await this.post(msg);
    if ("error" in reply) {
      const e = reply.error as { class?: string; desc?: string };
      throw new Error(`${String(msg.execute ?? msg["exec-oob"])}: ${e.class ?? "?"}: ${e.desc ?? "?"}`);
    }
    return reply.return;
  }

  /** The same request without printing it or its reply, for polling loops that print a summary. */
  async quiet(execute: string, oob = false): Promise<Json> {
    const id = `${this.label}-${this.nextId++}`;
    if (this.closed !== null) throw this.closed;
    this.silent.add(id);
    const reply = new Promise<Json>((resolve) => this.waiting.set(id, resolve));
    this.socket.write(JSON.stringify(oob ? { "exec-oob": execute, id } : { execute, id }) + "\n");
    const r = await reply;
    this.silent.delete(id);
    if ("error" in r) throw new Error(`${execute}: ${JSON.stringify(r.error)}`);
    return r.return as Json;
  }

  /**
   * Waits for the next event called `name` whose data has every field of `data` (e.g. the
   * MIGRATION event with `{status: "postcopy-active"}`), skipping others, and prints it.
   */
  async event(name: string, data: Json = {}, timeoutMs = 60_000): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.eventMark < this.events.length) {
        const e = this.events[this.eventMark++] as { line: string; msg: Json };
        const d = (e.msg.data ?? {}) as Json;
        if (e.msg.event === name && Object.entries(data).every(([k, v]) => d[k] === v)) {
          this.demo.print(`  ${this.label} ← ${e.line}`);
          return e.msg;
        }
      }
      if (this.closed !== null) throw this.closed;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: timed out waiting for the ${name} event ${JSON.stringify(data)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.eventWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The running demo: its processes, connections and temp dir, and the narration. */
export class Demo {
  readonly dir: string;
  private readonly vms: DemoVm[] = [];

  /** What the VMs that have already ended said on stderr, for a demo that failed. */
  endedVms(): string {
    return this.vms
      .filter((vm) => vm.ended)
      .map((vm) => `${vm.name} ended (${String(vm.proc.exitCode ?? vm.proc.signalCode)}):\n${vm.errText}`)
      .join("\n");
  }
  private readonly qmps: DemoQmp[] = [];
  private stepNo = 0;
  private lines: AsyncIterator<string> | null = null;
  private rl: Interface | null = null;
  private cleaned = false;
  constructor(readonly opts: DemoOptions) {
    this.dir = mkdtempSync(join(tmpdir(), "minivm-demo-"));
  }

  print(line: string): void {
    this.opts.out(line + "\n");
  }

  /** Plain words for the class; wrapped as given. */
  say(text: string): void {
    this.print(text);
  }

  /** A numbered step: a title, what it shows, and (interactively) a pause for Enter first. */
  async step(title: string, explain: string): Promise<void> {
    this.stepNo++;
    this.print("");
    this.print(`── Step ${this.stepNo}: ${title}`);
    this.print(explain);
    await this.pause();
  }

  async pause(): Promise<void> {
    if (this.opts.nonInteractive) return;
    this.opts.out("  [Enter] ");
    // terminal: false keeps the tty in cooked mode, so Ctrl-C stays a SIGINT (main.ts cleans up).
    if (this.lines === null) {
      this.rl = createInterface({ input: process.stdin, terminal: false });
      this.lines = this.rl[Symbol.asyncIterator]();
    }
    const r = await this.lines.next();
    if (r.done === true) this.opts.nonInteractive = true;
  }

  /** A writable copy of the teaching disk, so the shipped image never changes. */
  diskCopy(name = "disk.img"): string {
    const path = join(this.dir, name);
    copyFileSync(this.opts.disk, path);
    return path;
  }

  /**
   * Starts `minivm run DISK` with `monitors` QMP sockets in the temp dir plus `extra` flags,
   * and waits until every monitor listens. The first VM started gets the dashboard when asked.
   */
  async startVm(name: string, disk: string, monitors: number, extra: string[] = []): Promise<DemoVm> {
    const paths = Array.from({ length: monitors }, (_, i) => join(this.dir, `${name}${monitors > 1 ? `-${i + 1}` : ""}.sock`));
    const args = [this.opts.cli, "run", disk, "--name", name];
    for (const p of paths) args.push("--qmp", `unix:${p},server=on,wait=off`);
    const dashboard = this.opts.dashboard && this.vms.length === 0;
    if (this.vms.length === 0) this.print(`  ($DEMO is ${this.dir}, removed when the demo ends)`);
    if (dashboard) args.push("--dashboard", "127.0.0.1:0");
    args.push(...extra);
    this.print(`  $ minivm ${args.slice(1).map((a) => a.replace(this.dir, "$DEMO")).join(" ")}`);
    const vm = new DemoVm(name, spawn(this.opts.node, args, { stdio: ["pipe", "pipe", "pipe"] }), paths);
    this.vms.push(vm);
    for (let i = 0; i < monitors; i++) await vm.stderrMatch(new RegExp(`(?:QMP monitor listening on \\S+[\\s\\S]*){${i + 1}}`));
    if (dashboard) {
      const m = await vm.stderrMatch(/dashboard at (\S+)/);
      this.print(`  The dashboard for ${name} is at ${m[1] ?? "?"} (open it in a browser)`);
    }
    return vm;
  }

  async qmp(label: string, path: string, oob = true): Promise<DemoQmp> {
    const q = await DemoQmp.open(this, label, path, oob);
    this.qmps.push(q);
    return q;
  }

  /** Types a line at the guest's prompt and prints what the guest answers. */
  async guest(vm: DemoVm, line: string, until = PROMPT, timeoutMs = 60_000): Promise<string> {
    this.print(`  ${vm.name} guest$ ${line}`);
    vm.type(line + "\n");
    const seen = await vm.waitFor(until, timeoutMs);
    const shown = (until === PROMPT ? seen.slice(0, -PROMPT.length) : seen).split("\n").filter((l) => l.trim() !== "" && l.trim() !== line);
    for (const l of shown) this.print(`  ${vm.name} | ${l}`);
    return seen;
  }

  /** Ends every process and removes the temp dir; safe to call twice. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const q of this.qmps) q.close();
    await Promise.all(this.vms.map((vm) => vm.stop()));
    rmSync(this.dir, { recursive: true, force: true });
    this.rl?.close();
    process.stdin.pause();
  }
}
