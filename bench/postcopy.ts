// Postcopy, minivm and QEMU 7.2 in the same run (issue 10): the teaching guest sweeping 64 MiB
// as fast as it can (`dirty 64`; a rate-limited sweep sleeps on the timer, which QEMU 7.2 does
// not re-arm after an incoming migration) migrates over a unix socket; after 300 ms of precopy
// `migrate-start-postcopy` switches, the destination runs at once and faults its missing
// pages in. Per case and VMM: the switch-over (the source's downtime: VM stopped to package
// sent), the total time, the page requests, the fault latency on the destination (minivm:
// x-postcopy-faults p50/p99/max from request to arrival; QEMU: postcopy-blocktime / requests,
// the mean time a vCPU waited, as QEMU reports no percentiles), with and without
// max-postcopy-bandwidth; and the recovery case: migrate-pause, migrate-recover, then the time
// from `migrate` with resume to postcopy-active on the source. Prints JSON.
//
//   npm run build && node dist/bench/postcopy.js
//   MINIVM_BENCH_REPS=1 MINIVM_BENCH_CASES=128M-postcopy node dist/bench/postcopy.js
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { QmpClient } from "../src/qmp/client.js";
import type { MigrationCapability } from "../src/qapi/generated/types.js";
import { connect, kill, launch, PROMPT, until, type Guest, type Vmm } from "./_vms.js";

const repo = process.cwd();
const dir = mkdtempSync(join(tmpdir(), "minivm-bench-postcopy-"));
const REPS = Number(process.env.MINIVM_BENCH_REPS ?? 3);
const ONLY = process.env.MINIVM_BENCH_CASES?.split(",");

interface Case {
  name: string;
  memory: "128M" | "1G";
  /** max-postcopy-bandwidth in bytes/s (0 = unlimited). */
  postcopyBandwidth: number;
  recovery: boolean;
}

const CASES: Case[] = [
  { name: "128M-postcopy", memory: "128M", postcopyBandwidth: 0, recovery: false },
  { name: "128M-postcopy-bw32M", memory: "128M", postcopyBandwidth: 32 << 20, recovery: false },
  { name: "1G-postcopy", memory: "1G", postcopyBandwidth: 0, recovery: false },
  { name: "128M-recovery", memory: "128M", postcopyBandwidth: 0, recovery: true },
];

interface Info {
  status?: string;
  "total-time"?: number;
  downtime?: number;
  "error-desc"?: string;
  ram?: { "postcopy-requests": number; "postcopy-bytes": number; transferred: number };
  "x-postcopy-faults"?: { faults: number; "p50-us": number; "p99-us": number; "max-us": number };
  "postcopy-blocktime"?: number;
}

interface Run {
  switch_ms: number | null;
  total_time_ms: number | null;
  postcopy_requests: number;
  postcopy_bytes: number;
  fault_p50_us: number | null;
  fault_p99_us: number | null;
  fault_max_us: number | null;
  /** Mean vCPU wait per requested page (QEMU: postcopy-blocktime / postcopy-requests). */
  fault_mean_us: number | null;
  resume_to_active_ms: number | null;
}

const caps = (names: MigrationCapability[]) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });

async function waitFor(c: QmpClient, want: string, timeoutMs = 120_000): Promise<Info> {
  const t0 = performance.now();
  for (;;) {
    const i = (await c.execute("query-migrate")) as Info;
    if (i.status === want) return i;
    if (i.status === "failed") throw new Error(`migration failed: ${i["error-desc"] ?? "?"}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${want}: ${JSON.stringify(i)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The destination's status from its MIGRATION events (its in-band QMP may be stuck on a fault). */
async function dstEvent(c: QmpClient, status: string): Promise<void> {
  for (;;) {
    const e = await c.waitEvent("MIGRATION");
    if ((e.data as { status?: string } | undefined)?.status === status) return;
  }
}

async function once(vmm: Vmm, c: Case, rep: number): Promise<Run> {
  const tag = `${vmm}-${c.name}-${rep}`;
  const disk = join(dir, `${tag}.img`);
  copyFileSync(join(repo, "firmware/build/disk.img"), disk);
  const mig = join(dir, `${tag}.mig`);
  const guests: Guest[] = [];
  const clients: QmpClient[] = [];
  try {
    const dst = launch(vmm, c.memory, disk, join(dir, `${tag}-dst.qmp`), `unix:${mig}`);
    guests.push(dst);
    const src = launch(vmm, c.memory, disk, join(dir, `${tag}-src.qmp`), null);
    guests.push(src);
    const dq = await connect(join(dir, `${tag}-dst.qmp`), dst);
    clients.push(dq);
    await dq.execute("migrate-set-capabilities", caps(vmm === "qemu" ? ["postcopy-ram", "events", "postcopy-blocktime"] : ["postcopy-ram", "events"]));
    await until(src, PROMPT);
    // No rate limit: QEMU 7.2 does not re-arm the riscv timer after an incoming migration, so a
    // rate-limited sweep (which sleeps on the timer) would stop touching pages on its destination.
    src.proc.stdin?.write("dirty 64\r");
    await until(src, /until a key is pressed/);
    const sq = await connect(join(dir, `${tag}-src.qmp`), src);
    clients.push(sq);
    await sq.execute("migrate-set-capabilities", caps(["postcopy-ram", "events"]));
    if (c.postcopyBandwidth > 0 || c.recovery) await sq.execute("migrate-set-parameters", { "max-postcopy-bandwidth": c.recovery ? 1 << 20 : c.postcopyBandwidth });
    if (vmm === "minivm") {
      for (;;) {
        const info = (await dq.execute("query-migrate")) as { "socket-address"?: unknown[] };
        if ((info["socket-address"]?.length ?? 0) > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await sq.execute("migrate", { uri: `unix:${mig}` });
    await new Promise((r) => setTimeout(r, 300));
    await sq.execute("migrate-start-postcopy");
    let resumeMs: number | null = null;
    if (c.recovery) {
      await waitFor(sq, "postcopy-active");
      await dstEvent(dq, "postcopy-active");
      await new Promise((r) => setTimeout(r, 200));
      await sq.execOob("migrate-pause");
      await waitFor(sq, "postcopy-paused");
      await dstEvent(dq, "postcopy-paused");
      const again = join(dir, `${tag}.mig2`);
      await dq.execOob("migrate-recover", { uri: `unix:${again}` });
      await sq.execute("migrate-set-parameters", { "max-postcopy-bandwidth": 0 });
      const t0 = performance.now();
      await sq.execute("migrate", { uri: `unix:${again}`, resume: true });
      await waitFor(sq, "postcopy-active");
      resumeMs = performance.now() - t0;
    }
    const done = await waitFor(sq, "completed");
    await dstEvent(dq, "completed");
    const di = (await dq.execute("query-migrate")) as Info;
    const requests = done.ram?.["postcopy-requests"] ?? 0;
    const f = di["x-postcopy-faults"];
    return {
      switch_ms: done.downtime ?? null,
      total_time_ms: done["total-time"] ?? null,
      postcopy_requests: requests,
      postcopy_bytes: done.ram?.["postcopy-bytes"] ?? 0,
      fault_p50_us: f?.["p50-us"] ?? null,
      fault_p99_us: f?.["p99-us"] ?? null,
      fault_max_us: f?.["max-us"] ?? null,
      fault_mean_us:
        vmm === "qemu"
          ? di["postcopy-blocktime"] !== undefined && requests > 0
            ? Math.round((di["postcopy-blocktime"] * 1000) / requests)
            : null
          : null,
      resume_to_active_ms: resumeMs === null ? null : Math.round(resumeMs),
    };
  } finally {
    for (const q of clients) q.close();
    for (const g of guests) await kill(g);
    rmSync(disk, { force: true });
  }
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const c of CASES) {
    if (ONLY !== undefined && !ONLY.includes(c.name)) continue;
    const row: Record<string, unknown> = {};
    for (const vmm of ["minivm", "qemu"] as const) {
      const runs: Run[] = [];
      const errors: string[] = [];
      for (let rep = 0; rep < REPS; rep++) {
        try {
          runs.push(await once(vmm, c, rep));
        } catch (e) {
          errors.push(e instanceof Error ? e.message : String(e));
        }
      }
      const med: Record<string, number | null> = {};
      const worst: Record<string, number | null> = {};
      for (const k of Object.keys(runs[0] ?? {}) as (keyof Run)[]) {
        const xs = runs.map((r) => r[k]).filter((v): v is number => typeof v === "number");
        med[k] = median(xs);
        worst[k] = xs.length === 0 ? null : Math.max(...xs);
      }
      row[vmm] = { runs: runs.length, median: med, worst, errors, detail: runs };
    }
    const m = (row.minivm as { median: Record<string, number | null> }).median;
    const q = (row.qemu as { median: Record<string, number | null> }).median;
    const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : Math.round((a / b) * 100) / 100);
    row.ratio_minivm_over_qemu = { switch_ms: ratio(m.switch_ms, q.switch_ms), total_time_ms: ratio(m.total_time_ms, q.total_time_ms), resume_to_active_ms: ratio(m.resume_to_active_ms, q.resume_to_active_ms) };
    out[c.name] = row;
    process.stderr.write(`${c.name}: ${JSON.stringify({ minivm: m, qemu: q })}\n`);
  }
  process.stdout.write(JSON.stringify({ suite: "postcopy", reps: REPS, cases: out }, null, 2) + "\n");
  rmSync(dir, { recursive: true, force: true });
}

void main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
