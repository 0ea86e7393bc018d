// QEMU's `-cpu rv32,c=false` on the command line: the hart loses the C extension, so the
// compressed conformance program's first 16-bit instruction is an illegal instruction.

import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BIN } from "../helpers/vm.js";

const ELF = new URL("../../firmware/tests/build/rv32uc.elf", import.meta.url).pathname;

function run(args: string[]): { out: string; err: string; status: number | null } {
  const r = spawnSync(process.execPath, [BIN, "run", "--bios", "none", "--kernel", ELF, ...args], { encoding: "latin1", timeout: 30_000 });
  return { out: r.stdout, err: r.stderr, status: r.status };
}

describe("-cpu", () => {
  it("runs compressed code by default and passes rv32uc", () => {
    const r = run([]);
    expect(r.out).toContain("rv32uc done");
    expect(r.status).toBe(0);
  });

  it("takes QEMU's -cpu rv32,c=false: 16-bit encodings trap with their bits in mtval", () => {
    const r = run(["-cpu", "rv32,c=false"]);
    expect(r.out.split("\n")[0]).toBe("T 00000002 80002008 00005565 ");
  });

  it("refuses a CPU model it does not have", () => {
    const r = run(["-cpu", "rv64"]);
    expect(r.status).not.toBe(0);
    expect(r.err).toContain("-cpu rv64: minivm's hart is 'rv32'");
  });
});
