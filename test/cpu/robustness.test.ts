// Whatever the guest executes, the VMM does not throw: random instruction words (which jump
// anywhere, poke devices, write CSRs, fault in every way) only ever produce guest traps or
// a guest-requested shutdown/reset.

import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { writeElf } from "./elf-writer.js";
import { Rng } from "./random-program.js";

describe("robustness", () => {
  it("runs 100 programs of random words without a host exception", () => {
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 100; seed++) {
      const rng = new Rng(seed);
      const bytes = new Uint8Array(4096);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < 1024; i++) {
        // Mostly valid-looking 32-bit encodings, some raw noise.
        const w = rng.int(4) === 0 ? rng.next() : (rng.next() & ~0x7f) | rng.pick([0x03, 0x13, 0x17, 0x23, 0x2f, 0x33, 0x37, 0x63, 0x67, 0x6f, 0x73, 0x0f]);
        dv.setUint32(i * 4, w >>> 0, true);
      }
      const m = new Machine({ serialOut: () => {}, ramSize: 16 * 1024 * 1024, kernel: writeElf([{ addr: 0x80000000, bytes }], 0x80000000) });
      for (let s = 0; s < 5; s++) {
        const r = m.runSlice(20_000);
        kinds.add(r.kind);
        if (r.kind === "reset") m.reset();
        if (r.kind === "shutdown" || r.kind === "idle") break;
      }
    }
    expect(kinds.has("budget")).toBe(true);
  });
});
