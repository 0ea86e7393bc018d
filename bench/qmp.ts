// QMP benchmarks: in-band query-status round trip on minivm and on QEMU in the same run (as
// a ratio), out-of-band round trip while the BQL is held by a locked x-oob-test, and
// pipelined in-band throughput. Then the same round trips measured by a client that is not
// minivm's nor JavaScript (bench/qmp_latency.py, plain sockets), against minivm and QEMU
// in turn, with p50/p99/p99.9. Prints JSON.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bench } from "tinybench";
import { QmpClient } from "../src/qmp/client.js";

const repo = process.cwd();
const dir = mkdtempSync(join(tmpdir(), "minivm-bench-qmp-"));

async function waitForSocket(path: string, proc: ChildProcess): Promise<QmpClient> {
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error(`${path}: process exited`);
    try {
      return await QmpClient.connect(`unix:${path}`);
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${path} never appeared`);
}

function startMinivm(sock: string): ChildProcess {
  return spawn(process.execPath, [join(repo, "bin/minivm.js"), "run", "-S", "--qmp", `unix:${sock},server=on,wait=off`], { stdio: "ignore" });
}

function startQemu(sock: string): ChildProcess | null {
  try {
    return spawn("qemu-system-riscv32", ["-M", "virt", "-bios", "none", "-S", "-display", "none", "-nodefaults", "-m", "16M", "-qmp", `unix:${sock},server=on,wait=off`], { stdio: "ignore" });
  } catch {
    return null;
  }
}

function stats(t: Bench["tasks"][number]): { median_us: number | null; p99_us: number | null; p999_us: number | null; mean_us: number | null; samples: number } {
  const l = t.result?.latency;
  const us = (ms: number | undefined): number | null => (ms === undefined ? null : Math.round(ms * 1000 * 100) / 100);
  return { median_us: us(l?.p50), p99_us: us(l?.p99), p999_us: us(l?.p999), mean_us: us(l?.mean), samples: l?.samples?.length ?? 0 };
}

async function pipelined(c: QmpClient, n: number): Promise<number> {
  const t0 = performance.now();
  const all: Array<Promise<unknown>> = [];
  for (let i = 0; i < n; i++) all.push(c.execute("query-status"));
  await Promise.all(all);
  return n / ((performance.now() - t0) / 1000);
}

const procs: ChildProcess[] = [];
try {
  const mProc = startMinivm(join(dir, "m.sock"));
  procs.push(mProc);
  const m = await waitForSocket(join(dir, "m.sock"), mProc);
  const qProc = startQemu(join(dir, "q.sock"));
  let q: QmpClient | null = null;
  if (qProc !== null) {
    procs.push(qProc);
    qProc.on("error", () => undefined);
    q = await waitForSocket(join(dir, "q.sock"), qProc).catch(() => null);
  }

  const bench = new Bench({ time: 2000, warmupTime: 300 });
  bench.add("minivm in-band query-status round trip", async () => {
    await m.execute("query-status");
  });
  if (q !== null) {
    const qc = q;
    bench.add("qemu in-band query-status round trip", async () => {
      await qc.execute("query-status");
    });
  }
  await bench.run();

  // OOB while the BQL is held: a second connection locks the main loop in x-oob-test.
  const locker = await QmpClient.connect(`unix:${join(dir, "m.sock")}`);
  const locked = locker.execute("x-oob-test", { lock: true });
  for (;;) {
    const info = await m.execOob("x-query-bql");
    if (info.holder === "main-loop") break;
  }
  const oobBench = new Bench({ time: 2000, warmupTime: 300 });
  oobBench.add("minivm exec-oob x-query-bql while the BQL is held", async () => {
    const info = await m.execOob("x-query-bql");
    if (info.holder !== "main-loop") throw new Error("lock no longer held");
  });
  await oobBench.run();
  await m.execOob("x-oob-test", { lock: false });
  await locked;
  locker.close();

  await pipelined(m, 2000);
  const mThroughput = await pipelined(m, 20000);
  const qThroughput = q !== null ? (await pipelined(q, 2000), await pipelined(q, 20000)) : null;

  // The Python client, minivm then QEMU, each on a fresh connection of the same processes.
  const python = (args: string[]): unknown => {
    const r = spawnSync("python3", [join(repo, "bench/qmp_latency.py"), ...args, "--n", process.env.MINIVM_BENCH_QMP_N ?? "5000"], { encoding: "utf8", timeout: 300_000 });
    if (r.status !== 0) return { error: (r.stderr || String(r.error)).trim().split("\n").pop() };
    return (JSON.parse(r.stdout) as { results: unknown }).results;
  };
  const fifo = join(dir, "dump.fifo");
  execFileSync("mkfifo", [fifo]);
  const pyMinivm = python(["minivm", join(dir, "m.sock")]) as Record<string, { p99_us: number | null }> | { error: string };
  // A -qmp socket serves one client at a time: ours makes way for the Python one.
  q?.close();
  const pyQemu = q !== null ? python(["qemu", join(dir, "q.sock"), "--fifo", fifo]) : null;

  const byName = new Map([...bench.tasks, ...oobBench.tasks].map((t) => [t.name, stats(t)]));
  const mIn = byName.get("minivm in-band query-status round trip");
  const qIn = byName.get("qemu in-band query-status round trip");
  const oob = byName.get("minivm exec-oob x-query-bql while the BQL is held");
  const out = {
    suite: "qmp",
    results: Object.fromEntries(byName),
    python_client: { minivm: pyMinivm, qemu: pyQemu },
    pipelined_commands_per_second: { minivm: Math.round(mThroughput), qemu: qThroughput === null ? null : Math.round(qThroughput) },
    ratios: {
      "in-band median minivm/qemu": mIn?.median_us && qIn?.median_us ? Math.round((mIn.median_us / qIn.median_us) * 100) / 100 : null,
      "pipelined throughput minivm/qemu": qThroughput ? Math.round((mThroughput / qThroughput) * 100) / 100 : null,
    },
    targets: {
      "oob p99 under 1000 us with the BQL held": oob?.p99_us !== null && oob?.p99_us !== undefined ? oob.p99_us < 1000 : null,
      "in-band median within 1.5x of qemu": mIn?.median_us && qIn?.median_us ? mIn.median_us / qIn.median_us <= 1.5 : null,
      "at least 20000 pipelined commands/s": mThroughput >= 20000,
      "python client: oob p99 under 1000 us with the BQL held": "error" in pyMinivm ? null : (pyMinivm["oob-bql-held"]?.p99_us ?? Infinity) < 1000,
      "python client: in-band p99 no worse than qemu's": ((): boolean | null => {
        const mine = "error" in pyMinivm ? undefined : pyMinivm.inband?.p99_us;
        const theirs = (pyQemu as Record<string, { p99_us: number | null }> | null)?.inband?.p99_us;
        return mine == null || theirs == null ? null : mine <= theirs;
      })(),
    },
  };
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
  m.close();
} finally {
  for (const p of procs) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
