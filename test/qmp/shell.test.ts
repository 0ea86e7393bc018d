// Drive `minivm qmp` through a real pseudo-terminal (tmux), typing as a user would.
import { execFileSync, spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QmpClient } from "../../src/qmp/client.js";
import { requireTool } from "../helpers/interop.js";
import { BIN, startVm, type VmProcess } from "../helpers/vm.js";

const haveTmux = requireTool("tmux", "tmux");

let vm: VmProcess;
/** A session negotiated (with oob) before any test can get the main loop stuck. */
let guard: QmpClient | undefined;
let session = "";

function tmux(...args: string[]): string {
  return execFileSync("tmux", args, { encoding: "utf8" });
}

function screen(): string {
  return tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", session);
}

async function until(pattern: RegExp): Promise<string> {
  let text = "";
  await expect.poll(() => (text = screen()), { timeout: 30_000, interval: 100 }).toMatch(pattern);
  return text;
}

function type(...keys: string[]): void {
  tmux("send-keys", "-t", session, ...keys);
}

const sessions: string[] = [];

function startShell(extra: string[]): string {
  session = `minivm-shell-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  sessions.push(session);
  const cmd = [process.execPath, BIN, "qmp", ...extra, `unix:${vm.qmpPath}`].map((a) => `'${a}'`).join(" ");
  tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", `HOME=${vm.dir} ${cmd}; echo "shell-exited=$?"; sleep 30`);
  return session;
}

describe.skipIf(!haveTmux)("minivm qmp, the interactive shell", () => {
  beforeAll(async () => {
    vm = await startVm(["--name", "shell-test"]);
    guard = await vm.connect();
  });
  afterAll(async () => {
    for (const s of sessions) {
      try {
        tmux("kill-session", "-t", s);
      } catch {
        // already gone
      }
    }
    await vm.kill();
  });

  it("completes commands, runs them with key=value arguments, prints events and sends OOB with '!'", async () => {
    startShell([]);
    await until(/\(minivm\) $/m);
    type("query-sta", "Tab");
    await until(/\(minivm\) query-status/);
    type("Enter");
    await until(/"status": "prelaunch"/);
    type("human-monitor-command comm", "Tab");
    await until(/human-monitor-command command-line=/);
    type("info", "Enter");
    await until(/info status  -- show the current VM status/);
    type("cont", "Enter");
    await until(/"event": "RESUME"/);
    type("!x-query-bql", "Enter");
    await until(/"acquisitions": \d+/);
    type("query-status foo=1", "Enter");
    await until(/Parameter 'foo' is unexpected/);
    type('{"execute": "query-name"}', "Enter");
    await until(/"name": "shell-test"/);
    // History: Up brings back the last line.
    type("Up");
    await until(/\(minivm\) \{"execute": "query-name"\}$/m);
    type("C-u", "C-d");
    tmux("kill-session", "-t", session);
  });

  it("runs HMP commands in --hmp mode, greeting as the HMP shell", async () => {
    startShell(["--hmp"]);
    await until(/\(minivm-hmp\) $/m);
    expect(screen()).toContain("Welcome to the HMP shell!");
    expect(screen()).not.toContain("QMP low-level shell");
    type("info sta", "Tab");
    await until(/\(minivm-hmp\) info status/);
    type("Enter");
    await until(/VM status: running/);
    tmux("kill-session", "-t", session);
  });

  it("sends each line as typed: the README's two-shell demo, an OOB reply overtaking a stuck in-band one", async () => {
    // Both shells first: once the main loop is stuck a new client cannot even negotiate.
    const second = startShell([]);
    await until(/\(minivm\) $/m);
    const first = startShell([]);
    await until(/\(minivm\) $/m);
    type("x-oob-test lock=true", "Enter");
    session = second;
    try {
      // The lock is taken when the core thread gets to the command: ask until it has.
      let id = 1;
      for (;; id++) {
        type("!x-query-bql", "Enter");
        const seen = await until(new RegExp(`"id": ${id}\\}`));
        if (new RegExp(`"holder": "main-loop".*"id": ${id}\\}`).test(seen)) break;
      }
      const [query, release] = [id + 1, id + 2];
      type("query-status", "Enter");
      type("!x-oob-test lock=false", "Enter");
      const text = await until(new RegExp(`"status": "\\w+".*"id": ${query}\\}`));
      // The release was answered before the query typed ahead of it.
      const released = text.indexOf(`{"return": {}, "id": ${release}}`);
      expect(released).toBeGreaterThan(-1);
      expect(released).toBeLessThan(text.indexOf(`"id": ${query}}`));
    } catch (e) {
      // Never leave the main loop stuck for the tests after this one.
      await guard?.execOob("x-oob-test", { lock: false });
      throw e;
    }
    session = first;
    await until(/\{"return": \{\}, "id": 1\}/);
    session = second;
  });

  it("keeps quoted values whole and refuses an incomplete JSON line without blocking", async () => {
    startShell([]);
    await until(/\(minivm\) $/m);
    type('human-monitor-command command-line="info status"', "Enter");
    await until(/VM status: /);
    type('{"execute": "query-name"', "Enter");
    await until(/Error: not a complete JSON value/);
    type("query-name", "Enter");
    await until(/"name": "shell-test"/);
  });

  it.each([["C-c"], ["C-d"]])("leaves cleanly on %s at an empty prompt", async (key) => {
    startShell([]);
    await until(/\(minivm\) $/m);
    type("query-sta");
    type("C-c");
    // Ctrl-C on a half-typed line only drops the line.
    await until(/\^C\n\(minivm\) $/m);
    type(key);
    const text = await until(/shell-exited=0/);
    expect(text).not.toContain("Connection closed by the server.");
  });
});

describe("minivm qmp with stdin not a terminal", () => {
  it("prints no prompt, sends every line, and waits for the replies before leaving at end of input", async () => {
    const v = await startVm(["--name", "piped"]);
    try {
      const p = spawn(process.execPath, [BIN, "qmp", `unix:${v.qmpPath}`], { stdio: ["pipe", "pipe", "inherit"] });
      let stdout = "";
      p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      p.stdin.end("query-name\nquery-status\n");
      expect(await new Promise((r) => p.on("exit", r))).toBe(0);
      expect(stdout).not.toContain("(minivm)");
      expect(stdout).toContain('{"return": {"name": "piped"}, "id": 1}');
      expect(stdout).toContain('"id": 2}');
    } finally {
      await v.kill();
    }
  });
});
