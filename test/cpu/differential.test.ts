// Differential testing against QEMU (qemu-system-riscv32 -M virt -bios none): every
// conformance ELF, and batches of random instruction sequences, must produce the same UART
// output and exit status on minivm and on QEMU. A mismatching random program is written
// out as its own ELF for replay. Without QEMU the test is skipped, unless
// MINIVM_REQUIRE_INTEROP=1 makes that a failure.

import { spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseElf } from "../../src/core/elf.js";
import { writeElf, type Segment } from "./elf-writer.js";
import { hasQemu, QEMU_CPU, QEMU_CPU_RVC, runOnMinivm, type RunResult } from "./harness.js";
import { generateBatch, type HarnessSymbols } from "./random-program.js";

const ELF_DIR = new URL("../../firmware/tests/build/", import.meta.url).pathname;
export const CONFORMANCE = ["smoke", "boot", "alu", "branch", "ldst", "amo", "mcsr", "faults", "irq", "sv32", "uart", "pmp", "rv32uc"];
const PROGRAMS_BASE = 0x80100000;
const BATCHES = Number(process.env.MINIVM_RANDOM_BATCHES ?? 10);
const PER_BATCH = Number(process.env.MINIVM_RANDOM_PER_BATCH ?? 110);
const SEED = Number(process.env.MINIVM_RANDOM_SEED ?? 20261125);
const RVC_BATCHES = Number(process.env.MINIVM_RANDOM_RVC_BATCHES ?? 5);

const qemu = hasQemu();

function qemuRun(elfPath: string, timeoutMs = 60_000, cpu = QEMU_CPU): Promise<RunResult> {
  return new Promise((resolve) => {
    const args = ["-M", "virt", "-cpu", cpu, "-bios", "none", "-m", "128M", "-nographic",
      "-global", "virtio-mmio.force-legacy=false", "-kernel", elfPath];
    // QEMU writes the UART to a file, not a pipe: while minivm runs a batch synchronously
    // nobody reads a pipe, QEMU's writes would stall, and QEMU 7.2's finisher exit()s
    // with the stalled tail of the output still queued (seen as a truncated dump in CI).
    const outPath = join(mkdtempSync(join(tmpdir(), "minivm-qemu-out-")), "uart.txt");
    const fd = openSync(outPath, "w");
    const p = spawn("qemu-system-riscv32", args, { stdio: ["ignore", fd, "ignore"] });
    closeSync(fd);
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ output: readFileSync(outPath, "latin1"), status: signal ? null : code });
    });
  });
}

function harness(): { segments: Segment[]; sym: HarnessSymbols } {
  const elf = parseElf(new Uint8Array(readFileSync(join(ELF_DIR, "randharness.elf"))));
  const need = (name: string) => {
    const v = elf.symbols.get(name);
    if (v === undefined) throw new Error(`randharness.elf lacks symbol ${name}`);
    return v;
  };
  const segments = elf.segments.map((s) => {
    const bytes = new Uint8Array(s.memsz);
    bytes.set(s.data);
    return { addr: s.paddr, bytes };
  });
  return {
    segments,
    sym: { begin: need("rand_begin"), dump: need("rand_dump"), finish: need("rand_finish"), regs: need("rand_regs"), data: need("rand_data") },
  };
}

function buildElf(h: { segments: Segment[] }, words: number[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const dv = new DataView(bytes.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return writeElf([...h.segments, { addr: PROGRAMS_BASE, bytes }], 0x80000000);
}

/** Split output into per-program sections keyed by the "P<n>" markers. */
function sections(output: string): string[] {
  return output.split(/^P/m).slice(1);
}

const tmp = mkdtempSync(join(tmpdir(), "minivm-diff-"));

describe.skipIf(!qemu)("minivm against qemu-system-riscv32", () => {
  it.each(CONFORMANCE)("%s.elf: same UART output and exit status", async (name) => {
    const path = join(ELF_DIR, `${name}.elf`);
    const q = qemuRun(path);
    const m = runOnMinivm(new Uint8Array(readFileSync(path)));
    const qr = await q;
    expect(m.output).toBe(qr.output);
    expect(m.status).toBe(qr.status);
  });

  // With C on, IALIGN is 16: the misaligned-jump and xRET cases of faults.elf and mcsr.elf
  // change, and rv32uc exercises every compressed form.
  it.each(CONFORMANCE)("%s.elf with the C extension on: same UART output and exit status", async (name) => {
    const path = join(ELF_DIR, `${name}.elf`);
    const q = qemuRun(path, 60_000, QEMU_CPU_RVC);
    const m = runOnMinivm(new Uint8Array(readFileSync(path)), undefined, true);
    const qr = await q;
    expect(m.output).toBe(qr.output);
    expect(m.status).toBe(qr.status);
  });

  // The CoreMark-class benchmark (bench/cpu), plain and built for rv32imac: the same CRC.
  it.each([["bench-core", false], ["bench-core-c", true]] as const)("%s.elf (compressed code: %s): same CRC as QEMU", async (name, rvc) => {
    const path = join(ELF_DIR, `${name}.elf`);
    const q = qemuRun(path, 60_000, rvc ? QEMU_CPU_RVC : QEMU_CPU);
    const m = runOnMinivm(new Uint8Array(readFileSync(path)), undefined, rvc);
    const qr = await q;
    expect(m.output).toMatch(/^[0-9a-f]{8} ?\n$/);
    expect(m.output).toBe(qr.output);
    expect(m.status).toBe(qr.status);
  });

  it(`runs ${BATCHES * PER_BATCH} random programs with identical register dumps`, () => randomBatches(false), 180_000);

  it(`runs ${RVC_BATCHES * PER_BATCH} random programs with compressed code (C on) with identical register dumps`, () => randomBatches(true, RVC_BATCHES), 180_000);

  async function randomBatches(rvc: boolean, count = BATCHES): Promise<void> {
    const h = harness();
    const failures: string[] = [];
    const seed0 = rvc ? SEED + 1000 : SEED;
    const batches = Array.from({ length: count }, (_, b) => {
      const { words } = generateBatch(seed0 + b, PER_BATCH, h.sym, PROGRAMS_BASE, rvc);
      const path = join(tmp, `batch-${b}.elf`);
      writeFileSync(path, buildElf(h, words));
      return { b, path };
    });
    // QEMU runs two at a time in the background while minivm works through the batches.
    const results: Promise<RunResult>[] = [];
    let next = 0;
    const startNext = () => {
      if (next < batches.length) {
        const i = next++;
        results[i] = qemuRun(batches[i].path, 60_000, rvc ? QEMU_CPU_RVC : QEMU_CPU).then((r) => {
          startNext();
          return r;
        });
      }
    };
    startNext();
    startNext();
    let compared = 0;
    for (const { b, path } of batches) {
      const m = runOnMinivm(new Uint8Array(readFileSync(path)), undefined, rvc);
      const q = await results[b];
      const ms = sections(m.output);
      const qs = sections(q.output);
      for (let i = 0; i < Math.max(ms.length, qs.length); i++) {
        compared++;
        if (ms[i] !== qs[i]) {
          const { words } = generateBatch(seed0 + b, PER_BATCH, h.sym, PROGRAMS_BASE, rvc);
          const dir = process.env.MINIVM_FAILURE_DIR ?? join(tmpdir(), "minivm-differential-failures");
          mkdirSync(dir, { recursive: true });
          const file = join(dir, `batch-seed${seed0 + b}${rvc ? "-rvc" : ""}.elf`);
          writeFileSync(file, buildElf(h, words));
          failures.push(`seed ${seed0 + b} program ${i} differs (replay: ${file})\n minivm: ${ms[i]}\n qemu:   ${qs[i]}`);
          break;
        }
      }
      if (m.status !== q.status) failures.push(`seed ${seed0 + b}: exit status minivm ${m.status} qemu ${q.status}`);
    }
    expect(failures).toEqual([]);
    expect(compared).toBeGreaterThanOrEqual(count * PER_BATCH);
  }
});
