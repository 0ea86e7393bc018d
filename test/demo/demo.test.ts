// `minivm demo NAME --non-interactive` as a real process: each demo's key lines, in order,
// and the clean-up of its processes and temp dir on exit and on Ctrl-C.

import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BIN } from "../helpers/vm.js";

interface Run {
  code: number | string;
  out: string;
  err: string;
}

function demo(args: string[]): Promise<Run> {
  const p = spawn(process.execPath, [BIN, "demo", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  p.stdout.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code: code ?? signal ?? -1, out, err })));
}

function demoDir(out: string): string {
  const m = /\(\$DEMO is (\S+), removed/.exec(out);
  if (m === null) throw new Error(`no $DEMO line in:\n${out}`);
  return m[1] as string;
}

/** Processes whose command line names `dir`: the demo's VMs, if any survived it. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "latin1").includes(dir)) pids.push(Number(e));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function expectCleanedUp(out: string): void {
  const dir = demoDir(out);
  expect(existsSync(dir)).toBe(false);
  expect(processesUsing(dir)).toEqual([]);
}

describe("minivm demo", () => {
  it("lists the demos, the postcopy ones as still to come", async () => {
    const r = await demo([]);
    expect(r.code).toBe(0);
    for (const name of ["oob", "histogram", "precopy", "postcopy", "recovery"]) expect(r.out).toMatch(new RegExp(`^  ${name} `, "m"));
    expect(r.out).toMatch(/postcopy .*postcopy issue/);
    const later = await demo(["recovery", "--non-interactive"]);
    expect(later.code).toBe(1);
    expect(later.err).toMatch(/arrives with the postcopy issue/);
  });

  it("oob: the out-of-band replies are printed before the stuck in-band one", async () => {
    const r = await demo(["oob", "--non-interactive"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const sent = r.out.indexOf('A → {"execute":"x-oob-test","arguments":{"lock":true},"id":"stuck"}');
    const holder = r.out.search(/B ← \{"return": \{[^\n]*"holder": "main-loop"[^\n]*"id": "who-holds-it"\}/);
    const release = r.out.indexOf('B ← {"return": {}, "id": "release"}');
    const stuck = r.out.indexOf('A ← {"return": {}, "id": "stuck"}');
    expect(sent).toBeGreaterThan(0);
    expect(holder).toBeGreaterThan(sent);
    expect(release).toBeGreaterThan(holder);
    expect(stuck).toBeGreaterThan(release);
    expectCleanedUp(r.out);
  }, 30_000);

  it("histogram: the write bins are non-zero after the guest's disk write; --dashboard prints its URL", async () => {
    const r = await demo(["histogram", "--non-interactive", "--dashboard"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain('"execute":"block-latency-histogram-set"');
    expect(r.out).toMatch(/disk write: OK/);
    const bins = /"wr_latency_histogram": \{"bins": \[([\d, ]+)\]/.exec(r.out);
    expect(bins).not.toBeNull();
    const counts = (bins?.[1] ?? "").split(",").map(Number);
    expect(counts).toHaveLength(5);
    expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(r.out).toMatch(/histogram total: [1-9]\d* writes/);
    expect(r.out).toMatch(/The dashboard for vm is at http:\/\/127\.0\.0\.1:[1-9]\d*\/\?token=\w+/);
    expectCleanedUp(r.out);
  }, 30_000);

  // Four VMs at once: in one CI run of the whole suite a VM's QMP connection closed under the
  // load (not reproduced in 20 runs since, three at a time). One retry keeps CI honest about a
  // demo that really fails; a failure now also prints the stderr of any VM that ended.
  it("precopy: converges, does not converge at 64 MiB/s until auto-converge throttles, and check passes", { timeout: 60_000, retry: 1 }, async () => {
    const r = await demo(["precopy", "--non-interactive"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const first = r.out.indexOf("query-migrate: completed");
    const cancelled = r.out.indexOf("query-migrate: cancelled");
    const throttled = r.out.search(/vCPU throttled \d+%/);
    const second = r.out.indexOf("query-migrate: completed", cancelled);
    expect(first).toBeGreaterThan(0);
    expect(cancelled).toBeGreaterThan(first);
    expect(throttled).toBeGreaterThan(cancelled);
    expect(second).toBeGreaterThan(throttled);
    expect(r.out.match(/\| check: OK pages=\d+/g)).toHaveLength(2);
    expectCleanedUp(r.out);
  });

  it("ends its VMs and removes its files on Ctrl-C while waiting for Enter", async () => {
    const p = spawn(process.execPath, [BIN, "demo", "oob"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    const exited = new Promise<number | string>((resolve) => p.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
    const seen = (re: RegExp): Promise<void> =>
      new Promise((resolve) => {
        const look = (): void => {
          if (re.test(out)) {
            p.stdout.off("data", look);
            resolve();
          }
        };
        p.stdout.on("data", look);
        look();
      });
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    // Step 1 waits for Enter before starting the VM; step 2 waits after it.
    await seen(/Step 1[\s\S]*\[Enter\]/);
    p.stdin.write("\n");
    await seen(/Step 2[\s\S]*\[Enter\]/);
    const dir = demoDir(out);
    expect(processesUsing(dir).length).toBeGreaterThan(0);
    p.kill("SIGINT");
    expect(await exited).toBe("SIGINT");
    expectCleanedUp(out);
  }, 30_000);
});
