// How long `npx minivm --version` takes to start (issue target: under 300 ms), and the
// same for `minivm run -S` up to a listening QMP socket. Prints JSON.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bench } from "tinybench";

const repo = process.cwd();
const bin = join(repo, "bin/minivm.js");

async function timeToListen(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "minivm-bench-"));
  const p = spawn(process.execPath, [bin, "run", "-S", "--qmp", `unix:${dir}/q.sock,server=on,wait=off`], { stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve) => p.stderr.on("data", (d: Buffer) => d.toString().includes("listening") && resolve()));
  p.kill("SIGKILL");
  await new Promise((r) => p.on("exit", r));
  rmSync(dir, { recursive: true, force: true });
}

const bench = new Bench({ iterations: 20, warmupIterations: 2, time: 0 });
bench.add("minivm --version (node bin/minivm.js)", () => {
  execFileSync(process.execPath, [bin, "--version"]);
});
bench.add("npx minivm --version", () => {
  execFileSync("npx", ["--no-install", "minivm", "--version"], { cwd: repo });
});
bench.add("minivm run -S until QMP listens", timeToListen);
bench.add("node -e 0 (floor: Node's own start-up)", () => {
  execFileSync(process.execPath, ["-e", "0"]);
});
await bench.run();

const results = bench.tasks.map((t) => ({
  name: t.name,
  median_ms: t.result?.latency?.p50 ?? null,
  p99_ms: t.result?.latency?.p99 ?? null,
  mean_ms: t.result?.latency?.mean ?? null,
  samples: t.result?.latency?.samples?.length ?? null,
}));
process.stdout.write(JSON.stringify({ suite: "startup", target: { "npx minivm --version median_ms": 300 }, results }, null, 2) + "\n");
