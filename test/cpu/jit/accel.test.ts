// Choosing and driving the execution engine: `minivm run --accel` on a real process, the
// exit-request word honoured by compiled code, and the shared code cache flushed on reset.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Machine } from "../../../src/core/machine.js";
import { createSharedRegions, hartWord } from "../../../src/core/regions.js";
import { HART } from "../../../src/core/shared.js";
import { parseAccel } from "../../../src/cpu/jit/accel.js";

const BIN = new URL("../../../bin/minivm.js", import.meta.url).pathname;
const ELF_DIR = new URL("../../../firmware/tests/build/", import.meta.url).pathname;

describe("--accel", () => {
  it("runs a guest to the same output on every engine", () => {
    const outputs = ["interp", "jit", "check"].map((accel) => {
      const r = spawnSync(process.execPath, [BIN, "run", "--accel", accel, "--bios", "none", "--kernel", `${ELF_DIR}branch.elf`], { encoding: "utf8", timeout: 120_000 });
      expect(r.status, accel).toBe(0);
      return r.stdout;
    });
    expect(outputs[0]).toContain("branch done");
    expect(outputs).toEqual([outputs[0], outputs[0], outputs[0]]);
  });

  it("refuses an engine it does not have, naming the ones it has", () => {
    const r = spawnSync(process.execPath, [BIN, "run", "--accel", "kvm", "--bios", "none"], { encoding: "utf8", timeout: 30_000 });
    expect(r.stderr).toContain("invalid accelerator kvm: expected one of interp, jit, check");
    expect(r.status).not.toBe(0);
    expect(() => parseAccel("tcg")).toThrow("invalid accelerator tcg");
  });
});

describe("the block compiler in the board", () => {
  const elf = new Uint8Array(readFileSync(`${ELF_DIR}bench-alu.elf`));

  it("stops compiled code at the next block when the exit-request word is set", () => {
    const regions = createSharedRegions({ ramSize: 16 << 20 });
    const m = new Machine({ regions, serialOut: () => undefined, kernel: elf, accel: "jit" });
    for (let i = 0; i < 20; i++) m.runSlice(4096);
    expect(m.engine.jit?.snapshotStats().compiled).toBeGreaterThan(0);
    const exit = hartWord(regions, 0, HART.EXIT_REQUEST);
    const before = m.cpu.instret;
    Atomics.store(exit, 0, 1);
    expect(m.engine.execute(4096)).toBe(0);
    expect(m.cpu.instret).toBe(before);
    Atomics.store(exit, 0, 0);
    expect(m.engine.execute(4096)).toBeGreaterThan(4000);
  });

  it("forgets its translations on system_reset and runs the same again", () => {
    const out: string[] = [];
    const m = new Machine({ ramSize: 16 << 20, serialOut: (b) => out.push(Buffer.from(b).toString()), kernel: elf, accel: "jit" });
    const runToEnd = () => {
      for (let i = 0; i < 1000; i++) if (m.runSlice(1_000_000).kind === "shutdown") return;
    };
    runToEnd();
    const flushes = m.engine.jit?.snapshotStats().flushes ?? 0;
    m.reset();
    expect(m.engine.jit?.snapshotStats()).toMatchObject({ regions: 0, flushes: flushes + 1 });
    runToEnd();
    expect(out.join("")).toBe("ea217cb9 \nea217cb9 \n");
  });
});
