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
      // Through bytes, as a stream would carry them: nothing but the encoded sections crosses.
      const state = src.save().map((s) => ({ ...s, bytes: Uint8Array.from(s.bytes) }));
      const second: number[] = [];
      const dst = new Machine({ serialOut: (b) => second.push(...b), kernel });
      dst.ram.bytes.set(src.ram.bytes);
      dst.load(state);
      expect(runToEnd(dst)).toEqual(refEnd);
      expect(Buffer.from([...first, ...second]).toString("latin1")).toBe(Buffer.from(whole).toString("latin1"));
    });
  }

  it("leaves the machine unchanged when one section of a load is bad", () => {
    const kernel = new Uint8Array(readFileSync(`${ELF_DIR}alu.elf`));
    const src = new Machine({ serialOut: () => {}, kernel });
    src.runSlice(5_000);
    const sections = src.save();
    const dst = new Machine({ serialOut: () => {}, kernel });
    // Everything but the guest clock and the CLINT's mtime, which follow the running clock.
    const frozen = () => dst.save().filter((s) => s.idstr !== "riscv_mtimer" && s.idstr !== "timer");
    const before = frozen();
    // The last virtio-mmio transport claims a status that does not fit a byte.
    const last = sections[sections.length - 1];
    const bytes = Uint8Array.from(last.bytes);
    new DataView(bytes.buffer).setUint32(0, 0x100);
    const bad = [...sections.slice(0, -1), { ...last, bytes }];
    expect(() => dst.load(bad)).toThrow(/virtio_mmio: status: value 0x100 out of range/);
    // The CPU section, decoded before the bad one, was not adopted either.
    expect(frozen()).toEqual(before);
    expect(dst.cpu.pc).not.toBe(src.cpu.pc);
  });

  it("refuses a load with a section missing or unknown", () => {
    const m = new Machine({ serialOut: () => {} });
    const sections = m.save();
    const cpu = sections.findIndex((s) => s.idstr === "cpu");
    expect(() => m.load(sections.filter((_, i) => i !== cpu))).toThrow(/section 'cpu' 0 is missing/);
    expect(() => m.load([...sections, { ...sections[cpu], instanceId: 7 }])).toThrow(/Unknown savevm section or instance 'cpu' 7/);
  });

  it("translates guest-virtual addresses for HMP x without touching A/D bits", () => {
    const m = new Machine({ serialOut: () => {} });
    expect(m.virtToPhys(0x80001234)).toBe(0x80001234);
  });
});
