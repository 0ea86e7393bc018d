// CPU benchmark: both of minivm's engines (the interpreter and the block compiler, --accel
// interp|jit) and qemu-system-riscv32 (TCG) in the same run, on four guest programs: an ALU
// loop, a load/store loop, branches with calls (firmware/tests/bench-*.S), and bench-core.c,
// a CoreMark-class workload (linked list, matrix, state machine, CRC-16), also built for
// rv32imac (bench-core-c: compressed code) and ten times longer (bench-core-long: about a
// second on QEMU, so that neither QEMU's start-up nor V8's warm-up of the generated code
// dominates; CoreMark's own rules ask for a long run for the same reason). Then the teaching
// guest's own `bench cpu` (Sv32 paging, S-mode) booted on all three; what the dirty-page
// bitmap costs on the store loop; and a profile of where the compiler's time goes on
// bench-core. Prints one JSON document.
//
//   npm run build && node dist/bench/cpu.js          (or: npm run bench cpu)
//
// Timings are best-of-N wall clock on an otherwise busy machine: compare runs, not digits.

import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Session } from "node:inspector";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Machine } from "../src/core/machine.js";
import type { Accel } from "../src/cpu/jit/accel.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const REPO = [`${here}../..`, `${here}..`].find((d) => existsSync(`${d}/firmware/tests/build`)) ?? process.cwd();
const ELF_DIR = `${REPO}/firmware/tests/build/`;
const REPEAT = Number(process.env.MINIVM_BENCH_REPEAT ?? 3);
const QEMU_CPU = "rv32,c=false,f=false,d=false,h=false,zba=false,zbb=false,zbc=false,zbs=false,sstc=false";
const QEMU_CPU_C = QEMU_CPU.replace("c=false", "c=true");
/** ELFs built for rv32imac run with the C extension on (both sides); the others with it off. */
const withC = (name: string) => name.endsWith("-c");
const ENGINES: Accel[] = ["interp", "jit"];

interface MinivmRun {
  instructions: number;
  ms: number;
  jit?: Record<string, number>;
}

/** Run an ELF to its finisher exit; `clearDirtyEverySlice` mimics a migration that syncs the bitmap constantly. */
function runMinivm(elf: Uint8Array, accel: Accel, clearDirtyEverySlice = false, rvc = false): MinivmRun {
  const m = new Machine({ serialOut: () => {}, kernel: elf, accel, rvc });
  const t0 = performance.now();
  for (;;) {
    const r = m.runSlice(1_000_000);
    if (clearDirtyEverySlice) m.ram.dirty.fill(0);
    if (r.kind !== "budget") break;
  }
  const ms = performance.now() - t0;
  const st = m.engine.jit?.snapshotStats();
  return { instructions: m.cpu.instret, ms, jit: st ? { ...st } : undefined };
}

function best(elf: Uint8Array, accel: Accel, clear = false, rvc = false): MinivmRun {
  let b: MinivmRun | null = null;
  for (let i = 0; i < REPEAT; i++) {
    const r = runMinivm(elf, accel, clear, rvc);
    if (b === null || r.ms < b.ms) b = r;
  }
  return b as MinivmRun;
}

function qemuMs(path: string, cpu = QEMU_CPU): number | null {
  const t0 = performance.now();
  const r = spawnSync(
    "qemu-system-riscv32",
    ["-M", "virt", "-cpu", cpu, "-bios", "none", "-m", "128M", "-nographic", "-kernel", path],
    { stdio: "ignore", timeout: 120_000 },
  );
  if (r.error || r.status !== 0) return null;
  return performance.now() - t0;
}

function qemuBest(path: string, cpu = QEMU_CPU): number | null {
  let b: number | null = null;
  for (let i = 0; i < REPEAT; i++) {
    const t = qemuMs(path, cpu);
    if (t === null) return null;
    b = b === null ? t : Math.min(b, t);
  }
  return b;
}

const mips = (instructions: number, ms: number) => Math.round((instructions / ms / 1000) * 10) / 10;
const round2 = (v: number) => Math.round(v * 100) / 100;

/** The teaching guest's `bench cpu` (microseconds it reports), on minivm with `accel` or on QEMU. */
async function guestBenchCpu(kind: Accel | "qemu"): Promise<number | null> {
  const dir = mkdtempSync(join(tmpdir(), "minivm-bench-cpu-"));
  const disk = join(dir, "disk.img");
  copyFileSync(join(REPO, "firmware/build/disk.img"), disk);
  const proc =
    kind === "qemu"
      ? spawn("qemu-system-riscv32", ["-M", "virt", "-m", "128M", "-bios", join(REPO, "firmware/build/minivm-sbi.elf"), "-drive", `file=${disk},if=none,format=raw,id=hd0`, "-device", "virtio-blk-device,drive=hd0", "-global", "virtio-mmio.force-legacy=false", "-nographic", "-monitor", "none", "-serial", "stdio"], { stdio: ["pipe", "pipe", "ignore"] })
      : spawn(process.execPath, [join(REPO, "bin/minivm.js"), "run", "--accel", kind, disk], { stdio: ["pipe", "pipe", "ignore"] });
  let text = "";
  let sent = false;
  try {
    return await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 120_000);
      proc.on("exit", () => resolve(null));
      proc.stdout?.on("data", (d: Buffer) => {
        text += d.toString();
        if (!sent && text.includes("minivm$ ")) {
          sent = true;
          proc.stdin?.write("bench cpu\r");
        }
        const m = /bench cpu: iterations=\d+ ms=\d+ us=(\d+) checksum/.exec(text);
        if (m !== null) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
  } finally {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Self time by kind of code while the block compiler runs bench-core (V8's sampling profiler). */
async function profileJit(elf: Uint8Array): Promise<Record<string, number>> {
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((resolve, reject) => session.post(method, params ?? {}, (err, r) => (err ? reject(err) : resolve(r as T))));
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 200 });
  await post("Profiler.start");
  runMinivm(elf, "jit");
  const { profile } = await post<{ profile: { nodes: { id: number; callFrame: { functionName: string; url: string } }[]; samples: number[] } }>("Profiler.stop");
  session.disconnect();
  const kind = new Map<number, string>();
  for (const n of profile.nodes) {
    const f = n.callFrame.functionName;
    const url = n.callFrame.url;
    let k = "other";
    if (f.startsWith("region_")) k = "generated code (region_*)";
    else if (url.includes("/jit/engine") && f === "execute") k = "dispatcher (Jit.execute)";
    else if (url.includes("/jit/") || f === "compile" || f === "generateRegion") k = "translation (region discovery, codegen, new Function)";
    else if (url.includes("/cpu/cpu.") && f === "execute") k = "interpreter (cold code)";
    else if (url.includes("/cpu/memory.") || url.includes("/cpu/mmu.")) k = "memory slow paths (memory.ts, mmu.ts)";
    else if (f === "(garbage collector)") k = "garbage collector";
    else if (url.includes("/core/") || url.includes("/devices/")) k = "board (runSlice, devices)";
    kind.set(n.id, k);
  }
  const counts = new Map<string, number>();
  for (const s of profile.samples) counts.set(kind.get(s) ?? "other", (counts.get(kind.get(s) ?? "other") ?? 0) + 1);
  const total = profile.samples.length;
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).map(([k, c]) => [k, Math.round((c / total) * 1000) / 10]));
}

const results: Record<string, unknown>[] = [];
// QEMU's start-up and shutdown, measured on a program that exits at once, is subtracted.
const qemuStartup = qemuBest(`${ELF_DIR}smoke.elf`);
for (const name of ["bench-alu", "bench-mem", "bench-call", "bench-core", "bench-core-c"]) {
  const path = `${ELF_DIR}${name}.elf`;
  const elf = new Uint8Array(readFileSync(path));
  const runs = Object.fromEntries(ENGINES.map((e) => [e, best(elf, e, false, withC(name))])) as Record<Accel, MinivmRun>;
  const q = qemuStartup === null ? null : qemuBest(path, withC(name) ? QEMU_CPU_C : QEMU_CPU);
  const qemuRunMs = q === null || qemuStartup === null ? null : Math.max(q - qemuStartup, 1);
  const instructions = runs.interp.instructions;
  const entry: Record<string, unknown> = {
    name,
    instructions,
    interp: { ms: Math.round(runs.interp.ms), mips: mips(instructions, runs.interp.ms) },
    jit: { ms: Math.round(runs.jit.ms), mips: mips(instructions, runs.jit.ms), cache: runs.jit.jit },
    qemu: qemuRunMs === null ? null : { ms: Math.round(qemuRunMs), mips: mips(instructions, qemuRunMs) },
    // Speed as a fraction of QEMU's (1 = as fast as QEMU TCG; the target is >= 0.33).
    speedOfQemu: qemuRunMs === null ? null : { interp: round2(qemuRunMs / runs.interp.ms), jit: round2(qemuRunMs / runs.jit.ms) },
  };
  if (name === "bench-mem") {
    // Steady state: every page's bit is already set, each store pays a load and a test.
    // Cleared after every 1M-instruction slice: the first store to each page pays Atomics.or.
    const bitmap: Record<string, unknown> = { storesPerIteration: 4 };
    for (const e of ENGINES) {
      let steady = Infinity;
      let cleared = Infinity;
      for (let i = 0; i < REPEAT; i++) {
        steady = Math.min(steady, runMinivm(elf, e, false).ms);
        cleared = Math.min(cleared, runMinivm(elf, e, true).ms);
      }
      bitmap[e] = {
        steadyStateMips: mips(instructions, steady),
        clearedEverySliceMips: mips(instructions, cleared),
        clearedCostPercent: Math.round(((cleared - steady) / steady) * 1000) / 10,
      };
    }
    entry.dirtyBitmap = bitmap;
  }
  results.push(entry);
}

// The long run: the compiler only (the interpreter would take a quarter of a minute per run).
{
  const name = "bench-core-long";
  const path = `${ELF_DIR}${name}.elf`;
  const elf = new Uint8Array(readFileSync(path));
  const jit = best(elf, "jit");
  const q = qemuStartup === null ? null : qemuBest(path);
  const qemuRunMs = q === null || qemuStartup === null ? null : Math.max(q - qemuStartup, 1);
  results.push({
    name,
    instructions: jit.instructions,
    jit: { ms: Math.round(jit.ms), mips: mips(jit.instructions, jit.ms), cache: jit.jit },
    qemu: qemuRunMs === null ? null : { ms: Math.round(qemuRunMs), mips: mips(jit.instructions, qemuRunMs) },
    speedOfQemu: qemuRunMs === null ? null : { jit: round2(qemuRunMs / jit.ms) },
  });
}

const guest: Record<string, number | null> = {};
for (const kind of [...ENGINES, "qemu"] as const) guest[kind] = await guestBenchCpu(kind);
const guestRatio = (e: Accel) => (guest[e] && guest.qemu ? round2((guest.qemu as number) / (guest[e] as number)) : null);

const profile = await profileJit(new Uint8Array(readFileSync(`${ELF_DIR}bench-core.elf`)));

const targets = { "bench-alu interp MIPS": 150, "bench-mem interp MIPS": 100, "bench-core jit speedOfQemu": 0.33, "bench-core-long jit speedOfQemu": 0.33 };
console.log(
  JSON.stringify(
    {
      suite: "cpu",
      repeat: REPEAT,
      qemuStartupMs: qemuStartup === null ? null : Math.round(qemuStartup),
      targets,
      results,
      guestBenchCpuUs: { ...guest, speedOfQemu: { interp: guestRatio("interp"), jit: guestRatio("jit") } },
      jitProfileBenchCorePercent: profile,
    },
    null,
    2,
  ),
);
