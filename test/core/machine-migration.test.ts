// Machine.save()/load(): a guest stopped mid-run, carried with its RAM into a fresh Machine,
// finishes exactly as an uninterrupted run does.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Machine, type SliceResult } from "../../src/core/machine.js";

const ELF_DIR = new URL("../../firmware/tests/build/", import.meta.url).pathname;

function runToEnd(m: Machine): SliceResult {
  for (;;) {
    const r = m.runSlice(100_000);
    if (r.kind === "shutdown" || r.kind === "reset") return r;
    if (r.kind === "idle") {
      if (r.wakeAtNs === null) return r;
      while (performance.now() * 1e6 < r.wakeAtNs) {
        // wait for the timer
      }
    }
  }
}

describe("Machine migration state", () => {
  for (const name of ["alu", "sv32", "amo"]) {
    it(`${name}.elf resumes on a second machine from save() + RAM`, () => {
      const kernel = new Uint8Array(readFileSync(`${ELF_DIR}${name}.elf`));
      const whole: number[] = [];
      const ref = new Machine({ serialOut: (b) => whole.push(...b), kernel });
      const refEnd = runToEnd(ref);

      const first: number[] = [];
      const src = new Machine({ serialOut: (b) => first.push(...b), kernel });
      src.runSlice(ref.cpu.instret > 20_000 ? 20_000 : Math.floor(ref.cpu.instret / 2));
      const state = JSON.parse(JSON.stringify(src.save()));
      const second: number[] = [];
      const dst = new Machine({ serialOut: (b) => second.push(...b), kernel });
      dst.ram.bytes.set(src.ram.bytes);
      dst.load(state);
      expect(runToEnd(dst)).toEqual(refEnd);
      expect(Buffer.from([...first, ...second]).toString("latin1")).toBe(Buffer.from(whole).toString("latin1"));
    });
  }

  it("refuses state for a different RAM size", () => {
    const a = new Machine({ serialOut: () => {}, ramSize: 16 * 1024 * 1024 });
    const b = new Machine({ serialOut: () => {}, ramSize: 32 * 1024 * 1024 });
    expect(() => b.load(a.save())).toThrow(/16777216 bytes of RAM/);
  });

  it("translates guest-virtual addresses for HMP x without touching A/D bits", () => {
    const m = new Machine({ serialOut: () => {} });
    expect(m.virtToPhys(0x80001234)).toBe(0x80001234);
  });
});
