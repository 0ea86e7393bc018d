// Block-layer benchmarks, JSON on stdout:
//  1. `minivm img bench` against `qemu-img bench` with the same options in the same run:
//     4 KiB requests, 64 in flight, reads and writes, raw and qcow2. qemu-img bench only steps
//     linearly, so the step is 4 KiB x 2557 (prime): every block once, in scattered order.
//  2. The cost of recording one request in BlockAcctStats (counters, histogram, idle time).
// Run: npx tsc -p . && node dist/bench/block.js [--count N]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Bench } from "tinybench";
import { BlockAcctStats, BlockAcctType, nowNs } from "../src/block/accounting.js";

const argCount = process.argv.indexOf("--count");
const COUNT = argCount > 0 ? Number(process.argv[argCount + 1]) : 40000;
const SIZE = 64 * 1024 * 1024;
const STEP = 4096 * 2557;
const entry = fileURLToPath(new URL("../src/cli/img-entry.js", import.meta.url));

function seconds(out: string): number {
  const m = /Run completed in (\d+\.\d+) seconds\./.exec(out);
  if (!m) throw new Error(`no timing in: ${out}`);
  return Number(m[1]);
}

function run(cmd: string, args: string[]): number {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return seconds(r.stdout);
}

function imgBench(): Array<Record<string, string | number>> {
  const dir = mkdtempSync(join(tmpdir(), "minivm-bench-"));
  const results: Array<Record<string, string | number>> = [];
  try {
    const raw = join(dir, "disk.raw");
    execFileSync("qemu-img", ["create", "-q", "-f", "raw", raw, String(SIZE)]);
    execFileSync("qemu-io", ["-f", "raw", "-c", `write -P 0x5a 0 ${SIZE}`, raw], { stdio: "ignore" });
    for (const fmt of ["raw", "qcow2"]) {
      for (const mode of ["read", "write"]) {
        // Separate, identical images for each tool, so that neither sees the other's allocations.
        const mine = join(dir, `m-${mode}.${fmt}`);
        const theirs = join(dir, `q-${mode}.${fmt}`);
        for (const f of [mine, theirs]) {
          if (fmt === "raw") execFileSync("cp", [raw, f]);
          else if (mode === "read") execFileSync("qemu-img", ["convert", "-O", "qcow2", raw, f]);
          else execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", f, String(SIZE)]);
        }
        const opts = ["-f", fmt, "-c", String(COUNT), "-d", "64", "-s", "4096", "-S", String(STEP), ...(mode === "write" ? ["-w"] : [])];
        // Alternate the order so page-cache warmth favours neither tool.
        const q1 = run("qemu-img", ["bench", ...opts, theirs]);
        const m1 = run(process.execPath, [entry, "bench", ...opts, mine]);
        const m2 = run(process.execPath, [entry, "bench", ...opts, mine]);
        const q2 = run("qemu-img", ["bench", ...opts, theirs]);
        const minivm = Math.min(m1, m2);
        const qemu = Math.min(q1, q2);
        results.push({
          format: fmt,
          op: mode,
          requests: COUNT,
          minivm_s: minivm,
          qemu_img_s: qemu,
          minivm_iops: Math.round(COUNT / minivm),
          qemu_img_iops: Math.round(COUNT / qemu),
          throughput_ratio: Number((qemu / minivm).toFixed(3)),
        });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

async function accountingCost(): Promise<Record<string, number>> {
  const plain = new BlockAcctStats();
  const hist = new BlockAcctStats();
  hist.setHistogram(BlockAcctType.READ, [10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000, 50_000_000]);
  const timed = new BlockAcctStats();
  timed.setHistogram(BlockAcctType.READ, [10_000, 100_000, 1_000_000]);
  timed.addInterval(60);
  // 1000 requests per timed iteration, so tinybench's own per-iteration cost does not count.
  const N = 1000;
  const kick = nowNs();
  const loop = (fn: () => void) => () => {
    for (let i = 0; i < N; i++) fn();
  };
  const bench = new Bench({ time: 1000 });
  bench
    .add("clock read alone (performance.now)", loop(() => void nowNs()))
    .add("request: start stamp + done (counters only)", loop(() => plain.done(BlockAcctType.READ, 4096, nowNs())))
    .add("request with a shared kick stamp: done + 8-boundary histogram", loop(() => hist.done(BlockAcctType.READ, 4096, kick)))
    .add("request: start stamp + done + 8-boundary histogram", loop(() => hist.done(BlockAcctType.READ, 4096, nowNs())))
    .add("request: + histogram + 60 s timed stats", loop(() => timed.done(BlockAcctType.READ, 4096, nowNs())))
    .add("bookkeeping only: doneAt + 8-boundary histogram, no clock", loop(() => hist.doneAt(BlockAcctType.READ, 4096, kick, kick + 123456)))
    .add("invalid request", loop(() => plain.invalid(BlockAcctType.WRITE)));
  await bench.run();
  const out: Record<string, number> = {};
  for (const t of bench.tasks) {
    // Each request reads the clock twice (start stamp, inside done), as an accounted request does.
    const r = t.result as { latency?: { mean: number }; mean?: number } | undefined;
    const ms = r?.latency?.mean ?? r?.mean ?? NaN;
    out[`${t.name} ns`] = Number(((ms * 1e6) / N).toFixed(1));
  }
  return out;
}

const report = {
  node: process.version,
  qemu_img: spawnSync("qemu-img", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0],
  img_bench: spawnSync("qemu-img", ["--version"]).status === 0 ? imgBench() : "qemu-img not installed",
  accounting: await accountingCost(),
};
process.stdout.write(JSON.stringify(report, null, 2) + "\n");
