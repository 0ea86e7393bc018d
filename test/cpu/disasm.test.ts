// The disassembler against QEMU's own `x/i` (HMP) over the conformance ELFs, line by line,
// plus a few fixed encodings.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseElf } from "../../src/core/elf.js";
import { disassemble, formatInsnLine } from "../../src/cpu/disasm.js";
import { hasQemu, QEMU_CPU, QEMU_CPU_RVC } from "./harness.js";

const ELF_DIR = new URL("../../firmware/tests/build/", import.meta.url).pathname;

describe("disassembler", () => {
  it("prints QEMU's pseudo-instructions and decimal immediates", () => {
    expect(formatInsnLine(0x80000000, 0x0000e117)).toBe(
      "0x80000000:  0000e117          auipc                   sp,57344                # 0x8000e000",
    );
    expect(disassemble(0x00000513, 0).operands).toBe("a0,zero");
    expect(disassemble(0x00000513, 0).mnemonic).toBe("mv");
    expect(disassemble(0x00008067, 0).mnemonic).toBe("ret");
    expect(disassemble(0x0000006f, 0x8000004c)).toEqual({ length: 4, mnemonic: "j", operands: "0", comment: "0x8000004c" });
    expect(disassemble(0x0000, 0)).toEqual({ length: 2, mnemonic: "illegal", operands: "" });
    expect(formatInsnLine(0x80002008, 0x5565)).toBe("0x80002008:  5565              addi                    a0,zero,-7");
    expect(disassemble(0xf1402573, 0).operands).toBe("a0,mhartid,zero");
  });

  it.skipIf(!hasQemu())("matches qemu's x/i on the conformance ELFs", () => {
    for (const name of ["alu", "amo", "branch", "mcsr", "faults", "sv32", "rv32uc"]) {
      const path = `${ELF_DIR}${name}.elf`;
      const elf = parseElf(new Uint8Array(readFileSync(path)));
      const text = elf.segments[0];
      // rv32uc's compressed code is in main, past the runtime's padding.
      const start = name === "rv32uc" ? (elf.symbols.get("main") ?? text.paddr) - text.paddr : 0;
      const count = Math.min(400, (text.data.length - start) / 4);
      const r = spawnSync(
        "qemu-system-riscv32",
        ["-M", "virt", "-cpu", name === "rv32uc" ? QEMU_CPU_RVC : QEMU_CPU, "-bios", "none", "-S", "-monitor", "stdio", "-display", "none", "-serial", "none", "-kernel", path],
        { input: `x/${count}i 0x${(text.paddr + start).toString(16)}\nquit\n`, encoding: "latin1", timeout: 20_000 },
      );
      const qemuLines = r.stdout.split(/\r?\n/).filter((l) => /^0x[0-9a-f]{8}:/.test(l)).map((l) => l.trimEnd());
      const dv = new DataView(text.data.buffer, text.data.byteOffset, text.data.byteLength);
      const ours: string[] = [];
      let off = start;
      while (ours.length < qemuLines.length && off + 4 <= text.data.length) {
        const word = dv.getUint32(off, true);
        const line = formatInsnLine(text.paddr + off, word).trimEnd();
        ours.push(line);
        off += disassemble(word, text.paddr + off).length;
      }
      // QEMU's disassembler still names the reserved compressed encodings rv32uc traps on
      // (c.lwsp x0, c.jr x0, shifts of 32+, c.flw, ...); minivm's says "illegal", as the hart does.
      const reserved = /^0x[0-9a-f]{8}: {2}[0-9a-f]{4} {14}(?!illegal)/;
      const keep = (l: string, i: number) => !(reserved.test(qemuLines[i] ?? "") && ours[i]?.endsWith("illegal"));
      expect(ours.filter(keep)).toEqual(qemuLines.filter(keep));
      expect(ours.filter((l, i) => !keep(l, i)).length).toBeLessThan(16);
    }
  });
});
