// kill -9 under a guest that writes: minivm boots the teaching disk (as qcow2 with 4 KiB
// clusters, so every round's first write allocates clusters, L2 tables and refcount blocks,
// and as raw), the guest writes its data partition with a new pattern again and again, and
// minivm is killed with SIGKILL at a random moment. After each kill: qemu-img check finds the
// qcow2 image clean or only leaking, and every write the guest saw acknowledged ("disk write:
// OK") is on disk: each word of the partition holds the last acknowledged pattern, or the
// pattern of the write that was in flight when the process died, never anything else.
// MINIVM_KILL9_SEED and MINIVM_KILL9_ROUNDS reproduce or widen a run.
import { execFileSync } from "node:child_process";
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { DISK_IMG, PROMPT, SerialConsole } from "../firmware/console.js";
import { BIN } from "../helpers/vm.js";
import { interop, qemuImg, rng, tempDir } from "./helpers.js";

const SEED = Number(process.env.MINIVM_KILL9_SEED ?? 9009);
const ROUNDS = Number(process.env.MINIVM_KILL9_ROUNDS ?? 50);
const MIB = 1 << 20;

const t = tempDir();
afterAll(() => t.cleanup());

/** The first MBR partition of type 0xda: where the guest's disk commands write. */
function dataPartition(): { start: number; length: number } {
  const mbr = readFileSync(DISK_IMG).subarray(0, 512);
  for (let i = 0; i < 4; i++) {
    const e = 446 + 16 * i;
    if (mbr[e + 4] === 0xda) return { start: mbr.readUInt32LE(e + 8) * 512, length: mbr.readUInt32LE(e + 12) * 512 };
  }
  throw new Error("the teaching disk has no 0xda partition");
}

/** The guest's words as a disk sees them: word at offset o is PATTERN ^ o. */
function wordsMatch(buf: Buffer, pattern: number, at: number): boolean {
  return buf.readUInt32LE(at) === ((pattern ^ at) >>> 0);
}

interface RoundResult {
  acked: number[];
  inFlight: number | null;
  check: number | null;
}

/** One boot, writes until the kill, then the checks. */
async function round(format: "qcow2" | "raw", r: number, rnd: () => number, part: { start: number; length: number }): Promise<RoundResult> {
  const file = t.path(`r${r}.${format}`);
  if (format === "qcow2") execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", DISK_IMG, file]);
  else copyFileSync(DISK_IMG, file);
  const vm = new SerialConsole(process.execPath, [BIN, "run", "--drive", `file=${file},format=${format}`]);
  const acked: number[] = [];
  let inFlight: number | null = null;
  try {
    await vm.waitFor(PROMPT);
    // The kill comes at a random moment within the first few writes (each is 1 MiB).
    const killAfterMs = 5 + Math.floor(rnd() * 400);
    const killer = setTimeout(() => vm.proc.kill("SIGKILL"), killAfterMs);
    try {
      for (let k = 0; ; k++) {
        const pattern = (0x5a000000 + r * 0x10000 + k * 0x101) >>> 0;
        inFlight = pattern;
        let out: string;
        try {
          out = await vm.command(`disk write 1 0x${pattern.toString(16)}`, 30_000);
        } catch {
          break; // killed
        }
        if (!out.includes("disk write: OK")) throw new Error(`disk write failed: ${out}`);
        acked.push(pattern);
        inFlight = null;
      }
    } finally {
      clearTimeout(killer);
    }
  } finally {
    await vm.kill();
  }
  // Integrity: qemu-img check (qcow2 only: raw has no metadata to check).
  let check: number | null = null;
  if (format === "qcow2") {
    const c = qemuImg(["check", file]);
    check = c.status;
    if (c.status !== 0 && c.status !== 3) throw new Error(`round ${r}: qemu-img check ${c.status}:\n${c.stdout}${c.stderr}`);
  }
  // Durability: what the guest saw acknowledged is there (read by qemu-img, not by minivm).
  const raw = t.path(`r${r}.out.raw`);
  execFileSync("qemu-img", ["convert", "-f", format, "-O", "raw", file, raw]);
  const disk = readFileSync(raw).subarray(part.start, part.start + MIB);
  const base = readFileSync(DISK_IMG).subarray(part.start, part.start + MIB);
  const last = acked.length > 0 ? acked[acked.length - 1] : null;
  for (let o = 0; o < MIB; o += 4) {
    const ok = last !== null ? wordsMatch(disk, last, o) : disk.readUInt32LE(o) === base.readUInt32LE(o);
    if (ok || (inFlight !== null && wordsMatch(disk, inFlight, o))) continue;
    throw new Error(`round ${r} (${format}): word at partition offset 0x${o.toString(16)} is 0x${disk.readUInt32LE(o).toString(16)}; acknowledged ${last === null ? "nothing" : "0x" + last.toString(16)}, in flight ${inFlight === null ? "nothing" : "0x" + inFlight.toString(16)}`);
  }
  rmSync(raw);
  rmSync(file);
  return { acked, inFlight, check };
}

describe.runIf(interop)("kill -9 while the guest writes", () => {
  it(`${ROUNDS} rounds on qcow2 and raw (seed ${SEED}): images check clean or leaking, no acknowledged write lost`, async () => {
    const part = dataPartition();
    expect(part.length).toBeGreaterThanOrEqual(MIB);
    const results: Array<RoundResult & { format: string }> = [];
    // The two formats run side by side: each round is a boot, a few writes and a kill.
    const formats: Array<"qcow2" | "raw"> = ["qcow2", "raw"];
    await Promise.all(
      formats.map(async (format, fi) => {
        const rnd = rng(SEED + fi);
        const mine = fi === 0 ? Math.ceil(ROUNDS * 0.6) : ROUNDS - Math.ceil(ROUNDS * 0.6);
        for (let r = 0; r < mine; r++) results.push({ format, ...(await round(format, fi * 1000 + r, rnd, part)) });
      }),
    );
    expect(results.length).toBe(ROUNDS);
    // The kills must land both before and after acknowledgements, and while writes were in
    // flight, or the test proves little.
    expect(results.filter((x) => x.acked.length === 0).length).toBeGreaterThan(0);
    expect(results.filter((x) => x.acked.length > 0).length).toBeGreaterThan(ROUNDS / 4);
    expect(results.filter((x) => x.inFlight !== null).length).toBeGreaterThan(ROUNDS / 2);
    const leaks = results.filter((x) => x.check === 3).length;
    console.info(`kill -9: ${ROUNDS} rounds, ${results.reduce((n, x) => n + x.acked.length, 0)} acknowledged writes, ${leaks} qcow2 images left with leaks`);
  }, 240_000);
});
