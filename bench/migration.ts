// Live precopy migration, minivm and QEMU 7.2 in the same run (issue 9 §4): the teaching guest
// (firmware/build/disk.img) with 128 MiB and 1 GiB of RAM, idle and with `dirty 64 RATE` at 16
// and 128 MiB/s, migrated over a unix socket with default parameters from one process to a
// second started with `--incoming` / `-incoming`. Per case and VMM: the source's query-migrate
// figures once it completes (total time, downtime, setup time, ram.transferred,
// dirty-sync-count), the median and the worst of the repetitions, whether it converged within
// the time limit (otherwise it is cancelled), and minivm/QEMU ratios. Prints JSON.
//
//   npm run build && node dist/bench/migration.js
//   MINIVM_BENCH_REPS=1 MINIVM_BENCH_LIMIT_S=30 MINIVM_BENCH_CASES=128M-idle node dist/bench/migration.js
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QmpClient } from "../src/qmp/client.js";
import { connect, launch, PROMPT, until, type Vmm } from "./_vms.js";

const repo = process.cwd();
const dir = mkdtempSync(join(tmpdir(), "minivm-bench-migration-"));
const LIMIT_S = Number(process.env.MINIVM_BENCH_LIMIT_S ?? 60);
const REPS = process.env.MINIVM_BENCH_REPS === undefined ? null : Number(process.env.MINIVM_BENCH_REPS);
const ONLY = process.env.MINIVM_BENCH_CASES?.split(",");

interface Case {
  name: string;
  memory: "128M" | "1G";
  /** The guest command running while the RAM moves, or null for an idle guest at its prompt. */
  dirty: { mib: number; rate: number } | null;
  reps: number;
}

// 64 MiB dirtied: half of the small guest, enough that at 128 MiB/s a pass over the working set
// takes longer than the 300 ms downtime allows, so the cases tell converging from not.
const CASES: Case[] = [];
for (const memory of ["128M", "1G"] as const) {
  // The 1 GiB guest costs about eight times as much per pass: fewer repetitions keep the suite
  // within a few minutes on a 2-core machine.
  const reps = REPS ?? (memory === "128M" ? 3 : 2);
  CASES.push({ name: `${memory}-idle`, memory, dirty: null, reps });
  for (const rate of [16, 128]) CASES.push({ name: `${memory}-dirty64@${rate}`, memory, dirty: { mib: 64, rate }, reps });
}

interface MigrateInfo {
  status?: string;
  "total-time"?: number;
  downtime?: number;
  "expected-downtime"?: number;
  "setup-time"?: number;
  ram?: { transferred: number; total: number; "dirty-sync-count": number; mbps: number; "dirty-pages-rate": number };
  "error-desc"?: string;
}

interface Run {
  converged: boolean;
  total_time_ms: number | null;
  downtime_ms: number | null;
  setup_time_ms: number | null;
  transferred_bytes: number;
  passes: number;
  ram_total_bytes: number;
  /** Wall clock from sending `migrate` to seeing `completed` (or to giving up). */
  wall_ms: number;
  /** What the guest's `dirty` reached in one second on its own, before the migration. */
  guest_dirty_mib_s: number | null;
  /** The highest dirty-pages-rate query-migrate showed during the migration, in MiB/s. */
  seen_dirty_rate_mib_s: number;
  error?: string;
}

async function migrateOnce(vmm: Vmm, c: Case, rep: number): Promise<Run> {
  const tag = `${vmm}-${c.name}-${rep}`;
  const disk = join(dir, `${tag}.img`);
  copyFileSync(join(repo, "firmware/build/disk.img"), disk);
  const mig = join(dir, `${tag}.mig`);
  const dst = launch(vmm, c.memory, disk, join(dir, `${tag}-dst.qmp`), `unix:${mig}`);
  const src = launch(vmm, c.memory, disk, join(dir, `${tag}-src.qmp`), null);
  const clients: QmpClient[] = [];
  try {
    const dq = await connect(join(dir, `${tag}-dst.qmp`), dst);
    clients.push(dq);
    await until(src, PROMPT);
    let guestRate: number | null = null;
    if (c.dirty !== null) {
      // One second alone first, so the report says what rate the guest really reaches on
      // this VMM and machine, then the sweep that runs through the migration.
      src.proc.stdin?.write(`dirty ${c.dirty.mib} ${c.dirty.rate} 1\r`);
      await until(src, /dirty: stopped .*mib_s=\d+/);
      guestRate = Number(/dirty: stopped .*mib_s=(\d+)/.exec(src.out())?.[1]);
      await until(src, /mib_s=\d+\nminivm\$ /);
      src.proc.stdin?.write(`dirty ${c.dirty.mib} ${c.dirty.rate}\r`);
      await until(src, /until a key is pressed/);
    }
    const sq = await connect(join(dir, `${tag}-src.qmp`), src);
    clients.push(sq);
    // The destination must listen before `migrate` connects: QEMU creates its socket during
    // start-up, minivm reports it in query-migrate's socket-address.
    if (vmm === "minivm") {
      for (;;) {
        const info = (await dq.execute("query-migrate")) as { "socket-address"?: unknown[] };
        if ((info["socket-address"]?.length ?? 0) > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const t0 = performance.now();
    await sq.execute("migrate", { uri: `unix:${mig}` });
    let seenRate = 0;
    for (;;) {
      const info = (await sq.execute("query-migrate")) as MigrateInfo;
      const wall = performance.now() - t0;
      seenRate = Math.max(seenRate, Math.round(((info.ram?.["dirty-pages-rate"] ?? 0) * 4096) / (1 << 20)));
      if (info.status === "completed") {
        return {
          converged: true,
          total_time_ms: info["total-time"] ?? null,
          downtime_ms: info.downtime ?? null,
          setup_time_ms: info["setup-time"] ?? null,
          transferred_bytes: info.ram?.transferred ?? 0,
          passes: info.ram?.["dirty-sync-count"] ?? 0,
          ram_total_bytes: info.ram?.total ?? 0,
          wall_ms: Math.round(wall),
          guest_dirty_mib_s: guestRate,
          seen_dirty_rate_mib_s: seenRate,
        };
      }
      if (info.status === "failed") throw new Error(`${tag}: migration failed: ${info["error-desc"] ?? "?"}`);
      if (wall > LIMIT_S * 1000) {
        await sq.execute("migrate_cancel");
        return {
          converged: false,
          total_time_ms: null,
          downtime_ms: null,
          setup_time_ms: info["setup-time"] ?? null,
          transferred_bytes: info.ram?.transferred ?? 0,
          passes: info.ram?.["dirty-sync-count"] ?? 0,
          ram_total_bytes: info.ram?.total ?? 0,
          wall_ms: Math.round(wall),
          guest_dirty_mib_s: guestRate,
          seen_dirty_rate_mib_s: seenRate,
        };
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    for (const q of clients) q.close();
    for (const g of [src, dst]) {
      if (g.proc.exitCode === null && g.proc.signalCode === null) {
        const gone = new Promise((r) => g.proc.once("exit", r));
        g.proc.kill("SIGKILL");
        await gone;
      }
    }
    rmSync(disk, { force: true });
  }
}

interface Summary {
  runs: number;
  converged: number;
  median: Record<string, number | null>;
  worst: Record<string, number | null>;
  /** Every run, in order. */
  detail: Run[];
}

const FIELDS = ["total_time_ms", "downtime_ms", "setup_time_ms", "transferred_bytes", "passes", "wall_ms", "guest_dirty_mib_s", "seen_dirty_rate_mib_s"] as const;

function summarise(runs: Run[]): Summary {
  const median: Record<string, number | null> = {};
  const worst: Record<string, number | null> = {};
  for (const f of FIELDS) {
    // A run that never converged has no total time or downtime: it counts as the worst there,
    // and a median or worst that lands on it is reported as null.
    const vals = runs.map((r) => r[f] ?? Infinity).sort((a, b) => a - b);
    const pick = (v: number | undefined): number | null => (v === undefined || v === Infinity ? null : v);
    median[f] = pick(vals[Math.floor((vals.length - 1) / 2)]);
    worst[f] = pick(vals[vals.length - 1]);
  }
  return { runs: runs.length, converged: runs.filter((r) => r.converged).length, median, worst, detail: runs };
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return typeof a === "number" && typeof b === "number" && b > 0 ? Math.round((a / b) * 100) / 100 : null;
}

async function defaults(vmm: Vmm): Promise<Record<string, unknown>> {
  const tag = `${vmm}-params`;
  const disk = join(dir, `${tag}.img`);
  copyFileSync(join(repo, "firmware/build/disk.img"), disk);
  const g = launch(vmm, "128M", disk, join(dir, `${tag}.qmp`), "defer");
  try {
    const q = await connect(join(dir, `${tag}.qmp`), g);
    const p = (await q.execute("query-migrate-parameters")) as Record<string, unknown>;
    q.close();
    return { "downtime-limit": p["downtime-limit"], "max-bandwidth": p["max-bandwidth"] };
  } finally {
    g.proc.kill("SIGKILL");
  }
}

const started = performance.now();
try {
  const params = { minivm: await defaults("minivm"), qemu: await defaults("qemu") };
  const downtimeLimit = Number(params.minivm["downtime-limit"] ?? 300);
  const results: Record<string, { minivm: Summary; qemu: Summary; ratios: Record<string, number | null> }> = {};
  for (const c of CASES) {
    if (ONLY !== undefined && !ONLY.includes(c.name)) continue;
    const runs: Record<Vmm, Run[]> = { minivm: [], qemu: [] };
    for (let rep = 0; rep < c.reps; rep++) {
      // Interleaved, so both VMMs see the same background load on the shared machine.
      for (const vmm of ["minivm", "qemu"] as const) {
        // A case that did not converge once would spend the whole limit again: one run tells it.
        if (runs[vmm].some((r) => !r.converged)) continue;
        process.stderr.write(`migration ${c.name} ${vmm} #${rep + 1}\n`);
        runs[vmm].push(await migrateOnce(vmm, c, rep));
      }
    }
    const minivm = summarise(runs.minivm);
    const qemu = summarise(runs.qemu);
    results[c.name] = {
      minivm,
      qemu,
      // A run cut off at the limit has no comparable figures: ratios only where both converged.
      ratios: Object.fromEntries(FIELDS.map((f) => [`${f} minivm/qemu (median)`, minivm.converged === minivm.runs && qemu.converged === qemu.runs ? ratio(minivm.median[f], qemu.median[f]) : null])),
    };
  }
  const idle = results["128M-idle"];
  const targets: Record<string, boolean | null> = {
    "idle 128 MiB: minivm's total time no slower than QEMU's (median)": idle ? (idle.minivm.median.total_time_ms ?? Infinity) <= (idle.qemu.median.total_time_ms ?? -Infinity) : null,
  };
  for (const [name, r] of Object.entries(results)) {
    // Only where QEMU converges too: otherwise the target does not apply.
    const applies = r.qemu.converged === r.qemu.runs && r.qemu.runs > 0;
    targets[`${name}: minivm converges and its worst downtime <= downtime-limit (${downtimeLimit} ms) where QEMU converges`] = applies
      ? r.minivm.converged === r.minivm.runs && (r.minivm.worst.downtime_ms ?? Infinity) <= downtimeLimit
      : null;
  }
  process.stdout.write(
    JSON.stringify(
      {
        suite: "migration",
        channel: "unix socket",
        time_limit_s: LIMIT_S,
        default_parameters: params,
        notes: [
          "QEMU's ram.total also counts the virt board's two 32 MiB flash banks and its boot ROM; minivm's is the RAM alone.",
          "Figures are the source's query-migrate after completion; wall_ms is from sending migrate to seeing completed (polled every 20 ms).",
        ],
        cases: results,
        targets,
        suite_seconds: Math.round((performance.now() - started) / 1000),
      },
      null,
      2,
    ) + "\n",
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
