// Drive `minivm qmp` through a real pseudo-terminal (tmux), typing as a user would.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { BIN, startVm, type VmProcess } from "../helpers/vm.js";

const haveTmux = requireTool("tmux", "tmux");

let vm: VmProcess;
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

function startShell(extra: string[]): void {
  session = `minivm-shell-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const cmd = [process.execPath, BIN, "qmp", ...extra, `unix:${vm.qmpPath}`].map((a) => `'${a}'`).join(" ");
  tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", `HOME=${vm.dir} ${cmd}; sleep 30`);
}

describe.skipIf(!haveTmux)("minivm qmp, the interactive shell", () => {
  beforeAll(async () => {
    vm = await startVm(["--name", "shell-test"]);
  });
  afterAll(async () => {
    try {
      tmux("kill-session", "-t", session);
    } catch {
      // already gone
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

  it("runs HMP commands in --hmp mode", async () => {
    startShell(["--hmp"]);
    await until(/\(minivm-hmp\) $/m);
    type("info sta", "Tab");
    await until(/\(minivm-hmp\) info status/);
    type("Enter");
    await until(/VM status: running/);
    tmux("kill-session", "-t", session);
  });
});
