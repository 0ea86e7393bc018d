// CPU benchmark: MIPS of minivm's interpreter on three guest loops (ALU, load/store,
// branches with calls), each ELF also timed on qemu-system-riscv32 in the same run, and
// what the dirty-page bitmap costs on the store loop. Prints one JSON document.
//
//   npm run build && node dist/bench/cpu.js
//
// Timings are best-of-N wall clock on an otherwise busy machine: compare runs, not digits.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Machine } from "../src/core/machine.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const ELF_DIR = [`${here}../../firmware/tests/build/`, `${here}../firmware/tests/build/`].find((d) => existsSync(d)) ?? "";
const REPEAT = Number(process.env.MINIVM_BENCH_REPEAT ?? 3);
const QEMU_CPU = "rv32,c=false,f=false,d=false,h=false,zba=false,zbb=false,zbc=false,zbs=false,sstc=false";

interface MinivmRun {
  instructions: number;
  ms: number;
}

/** Run an ELF to its finisher exit; `clearDirtyEverySlice` mimics a migration that syncs the bitmap constantly. */
function runMinivm(elf: Uint8Array, clearDirtyEverySlice = false): MinivmRun {
  const m = new Machine({ serialOut: () => {}, kernel: elf });
  const t0 = performance.now();
  for (;;) {
    const r = m.runSlice(1_000_000);
    if (clearDirtyEverySlice) m.ram.dirty.fill(0);
    if (r.kind !== "budget") break;
  }
  return { instructions: m.cpu.instret, ms: performance.now() - t0 };
}

function best(elf: Uint8Array, clear = false): MinivmRun {
  let b: MinivmRun | null = null;
  for (let i = 0; i < REPEAT; i++) {
    const r = runMinivm(elf, clear);
    if (b === null || r.ms < b.ms) b = r;
  }
  return b as MinivmRun;
}

function qemuMs(path: string): number | null {
  const t0 = performance.now();
  const r = spawnSync(
    "qemu-system-riscv32",
    ["-M", "virt", "-cpu", QEMU_CPU, "-bios", "none", "-m", "128M", "-nographic", "-kernel", path],
    { stdio: "ignore", timeout: 120_000 },
  );
  if (r.error || r.status !== 0) return null;
  return performance.now() - t0;
}

function qemuBest(path: string): number | null {
  let b: number | null = null;
  for (let i = 0; i < REPEAT; i++) {
    const t = qemuMs(path);
    if (t === null) return null;
    b = b === null ? t : Math.min(b, t);
  }
  return b;
}

const mips = (instructions: number, ms: number) => Math.round((instructions / ms / 1000) * 10) / 10;

const results: Record<string, unknown>[] = [];
// QEMU's start-up and shutdown, measured on a program that exits at once, is subtracted.
const qemuStartup = qemuBest(`${ELF_DIR}smoke.elf`);
for (const name of ["bench-alu", "bench-mem", "bench-call"]) {
  const path = `${ELF_DIR}${name}.elf`;
  const elf = new Uint8Array(readFileSync(path));
  const r = best(elf);
  const q = qemuStartup === null ? null : qemuBest(path);
  const qemuRunMs = q === null || qemuStartup === null ? null : Math.max(q - qemuStartup, 1);
  const entry: Record<string, unknown> = {
    name,
    instructions: r.instructions,
    minivm: { ms: Math.round(r.ms), mips: mips(r.instructions, r.ms) },
    qemu: qemuRunMs === null ? null : { ms: Math.round(qemuRunMs), mips: mips(r.instructions, qemuRunMs) },
    ratio: qemuRunMs === null ? null : Math.round((r.ms / qemuRunMs) * 100) / 100,
  };
  if (name === "bench-mem") {
    // Steady state: every page's bit is already set, each store pays a load and a test.
    // Cleared after every 1M-instruction slice: the first store to each page pays Atomics.or.
    // The two are interleaved so that a busy machine skews both alike.
    let steady = Infinity;
    let cleared = Infinity;
    for (let i = 0; i < REPEAT; i++) {
      steady = Math.min(steady, runMinivm(elf, false).ms);
      cleared = Math.min(cleared, runMinivm(elf, true).ms);
    }
    entry.dirtyBitmap = {
      storesPerIteration: 4,
      steadyStateMips: mips(r.instructions, steady),
      clearedEverySliceMips: mips(r.instructions, cleared),
      clearedCostPercent: Math.round(((cleared - steady) / steady) * 1000) / 10,
    };
  }
  results.push(entry);
}
const targets = { "bench-alu": 150, "bench-mem": 100 };
console.log(JSON.stringify({ suite: "cpu", repeat: REPEAT, qemuStartupMs: qemuStartup === null ? null : Math.round(qemuStartup), targetsMips: targets, results }, null, 2));
