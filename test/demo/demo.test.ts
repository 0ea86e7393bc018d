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
  it("lists the demos and refuses an unknown one", async () => {
    const r = await demo([]);
    expect(r.code).toBe(0);
    for (const name of ["oob", "histogram", "precopy", "postcopy", "recovery"]) expect(r.out).toMatch(new RegExp(`^  ${name} `, "m"));
    const unknown = await demo(["nope", "--non-interactive"]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/no demo 'nope'/);
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

  it("postcopy: the destination runs at once, faults pages in, completes, shows fault latency, and check passes", { timeout: 60_000 }, async () => {
    const r = await demo(["postcopy", "--non-interactive"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const start = r.out.indexOf('src → {"execute":"migrate-start-postcopy"');
    const active = r.out.indexOf('dst ← {"timestamp"', start);
    const completed = r.out.search(/dst ← \{"timestamp"[^\n]*"status": "completed"/);
    expect(start).toBeGreaterThan(0);
    expect(r.out.slice(active)).toMatch(/^dst ← [^\n]*"event": "MIGRATION", "data": \{"status": "postcopy-active"\}/);
    expect(completed).toBeGreaterThan(active);
    const served = /query-migrate: completed, [\d.]+ MiB sent, 0\.0 MiB left, (\d+) page requests served/.exec(r.out);
    expect(Number(served?.[1])).toBeGreaterThan(0);
    const faults = /fault latency on dst: (\d+) faults, p50 (\d+) µs, p99 (\d+) µs, max (\d+) µs/.exec(r.out);
    expect(Number(faults?.[1])).toBeGreaterThan(0);
    expect(Number(faults?.[3])).toBeGreaterThanOrEqual(Number(faults?.[2]));
    expect(r.out.slice(completed)).toMatch(/dst \| check: OK pages=4096/);
    expectCleanedUp(r.out);
  });

  it("recovery: both sides pause on the cut, in-band waits while OOB shows vcpu0 on the lock, recover and resume complete, check passes", { timeout: 60_000 }, async () => {
    const r = await demo(["recovery", "--non-interactive"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const at = (re: RegExp, from = 0): number => {
      const i = r.out.slice(from).search(re);
      expect(i, String(re)).toBeGreaterThanOrEqual(0);
      return from + i;
    };
    const cut = at(/src → \{"exec-oob":"migrate-pause","id":"cut"\}/);
    const srcPaused = at(/query-migrate: postcopy-paused/, cut);
    const dstPaused = at(/dst ← [^\n]*"event": "MIGRATION", "data": \{"status": "postcopy-paused"\}/, cut);
    const stuck = at(/dst → \{"execute":"query-status","id":"stuck"\}/, Math.max(srcPaused, dstPaused));
    const holder = at(/dst ← \{"return": \{"holder": "vcpu0"[^\n]*"id": "who-holds-it"\}/, stuck);
    const recover = at(/dst → \{"exec-oob":"migrate-recover","arguments":\{"uri":"unix:[^"]+"\},"id":"recover"\}/, holder);
    const resume = at(/src → \{"execute":"migrate","arguments":\{"uri":"unix:[^"]+","resume":true\}/, recover);
    const answered = at(/dst ← \{"return": \{"status": "running"[^\n]*"id": "stuck"\}/, resume);
    const completed = at(/query-migrate: completed/, resume);
    at(/dst ← [^\n]*"status": "completed"\}/, completed);
    expect(answered).toBeGreaterThan(holder);
    expect(at(/dst \| check: OK pages=4096/, completed)).toBeGreaterThan(completed);
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
