// The conformance ELFs (firmware/tests, one per instruction group and privileged
// behaviour) on minivm alone: each must reach its own "done" line and pass through the
// finisher. Their output is compared with QEMU's in differential.test.ts.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runOnMinivm } from "./harness.js";

const ELF_DIR = new URL("../../firmware/tests/build/", import.meta.url).pathname;
const TESTS = ["alu", "branch", "ldst", "amo", "mcsr", "faults", "irq", "sv32", "uart", "boot", "pmp"];

describe("conformance ELFs on minivm", () => {
  it.each(TESTS)("%s.elf runs to completion and passes", (name) => {
    const r = runOnMinivm(new Uint8Array(readFileSync(`${ELF_DIR}${name}.elf`)));
    expect(r.output).toContain(`${name} done\n`);
    expect(r.status).toBe(0);
  });

  it("rv32uc.elf (every compressed form, with C on) runs to completion and passes", () => {
    const r = runOnMinivm(new Uint8Array(readFileSync(`${ELF_DIR}rv32uc.elf`)), undefined, true);
    expect(r.output).toContain("rv32uc done\n");
    expect(r.status).toBe(0);
  });

  it("rv32uc.elf finds every compressed instruction illegal with C off", () => {
    const r = runOnMinivm(new Uint8Array(readFileSync(`${ELF_DIR}rv32uc.elf`)), 2_000_000, false);
    expect(r.output).toMatch(/^T 00000002 [0-9a-f]{8} 0000[0-9a-f]{4} \n/m);
  });

  it("alu.elf reports a failed self-check through the finisher's exit code", () => {
    // Patch the expected value of the first CHECK (x0 stays zero) so that it fails with 10.
    const bytes = new Uint8Array(readFileSync(`${ELF_DIR}alu.elf`));
    const r0 = runOnMinivm(bytes);
    expect(r0.status).toBe(0);
    const dv = new DataView(bytes.buffer);
    // The first "li t3, 0" (addi x28, x0, 0) in alu.elf is the x0 check's expected value.
    let patched = false;
    for (let off = 0; off + 4 <= bytes.length; off += 4) {
      if (dv.getUint32(off, true) === 0x00000e13) {
        dv.setUint32(off, 0x00100e13, true); // li t3, 1
        patched = true;
        break;
      }
    }
    expect(patched).toBe(true);
    const r = runOnMinivm(bytes);
    expect(r.status).toBe(10);
  });
});
