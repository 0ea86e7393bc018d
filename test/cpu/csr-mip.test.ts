import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { MIP_SEIP } from "../../src/cpu/constants.js";
import { tinyElf } from "../helpers/elf.js";
import { enc, li } from "./rv-asm.js";

const csrrc = (rd: number, csr: number, rs1: number) => enc.i(0x73, 3, rd, rs1, csr);
const MIP = 0x344;

describe("mip.SEIP and read-modify-write", () => {
  it("does not latch the PLIC's SEIP line when M-mode clears another mip bit with csrc", () => {
    // li t0, STIP; csrc mip, t0; then sleep.
    const program = [...li(5, 0x20), csrrc(0, MIP, 5), 0x10500073, 0xffdff06f];
    const m = new Machine({ kernel: tinyElf(program), serialOut: () => undefined });
    // PLIC source 1, priority 1, enabled for the S context (1), threshold 0: its line drives SEIP.
    m.plic.write(4 * 1, 4, 1);
    m.plic.write(0x2080, 4, 1 << 1);
    m.plic.setLevel(1, true);
    expect(m.cpu.mip & MIP_SEIP).toBe(MIP_SEIP);
    m.runSlice(1000);
    // The device lowers its line: SEIP must follow, as on QEMU (the guest saw endless
    // spurious external interrupts when the csrc wrote the line's value back as software SEIP).
    m.plic.setLevel(1, false);
    expect(m.cpu.seipSoftware).toBe(false);
    expect(m.cpu.mip & MIP_SEIP).toBe(0);
  });
});
