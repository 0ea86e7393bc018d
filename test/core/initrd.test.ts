// -initrd as QEMU 7.2 places it: after the kernel by min(RAM / 2, 128 MiB), announced in
// /chosen/linux,initrd-start and -end (32-bit cells). Compared with QEMU's own device tree
// for the same firmware, kernel and initrd (dumpdtb), at two RAM sizes.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { hasQemu, hasTool, QEMU_CPU } from "../cpu/harness.js";

const SBI = new URL("../../firmware/build/minivm-sbi.elf", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "minivm-initrd-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** /chosen's initrd properties from a DTB, through dtc. */
function chosenInitrd(dtb: Uint8Array): { start: string | undefined; end: string | undefined } {
  const path = join(tmp, `x${Math.random()}.dtb`);
  writeFileSync(path, dtb);
  const dts = spawnSync("dtc", ["-I", "dtb", "-O", "dts", path], { encoding: "utf8" }).stdout;
  const prop = (name: string) => new RegExp(`${name} = <(0x[0-9a-f]+)>;`).exec(dts)?.[1];
  return { start: prop("linux,initrd-start"), end: prop("linux,initrd-end") };
}

const kernel = new Uint8Array(64 * 1024).fill(0x13); // a raw image of nops
const initrd = new Uint8Array(12345).map((_, i) => i & 0xff);

describe("--initrd", () => {
  it.skipIf(!hasQemu() || !hasTool("dtc"))("is placed and announced as QEMU 7.2 does, with 128 MiB and with 64 MiB of RAM", () => {
    const kernelPath = join(tmp, "Image");
    const initrdPath = join(tmp, "initrd");
    writeFileSync(kernelPath, kernel);
    writeFileSync(initrdPath, initrd);
    for (const mib of [128, 64]) {
      const qemuDtb = join(tmp, `qemu-${mib}.dtb`);
      const q = spawnSync("qemu-system-riscv32", [
        "-M", `virt,dumpdtb=${qemuDtb}`, "-cpu", QEMU_CPU, "-m", `${mib}M`, "-bios", SBI,
        "-kernel", kernelPath, "-initrd", initrdPath, "-append", "console=ttyS0", "-nographic",
      ]);
      expect(q.status).toBe(0);
      const theirs = chosenInitrd(new Uint8Array(readFileSync(qemuDtb)));
      const m = new Machine({ serialOut: () => {}, ramSize: mib << 20, bios: new Uint8Array(readFileSync(SBI)), kernel, initrd, append: "console=ttyS0" });
      const ours = chosenInitrd(m.dumpDtb());
      expect(theirs.start).toBe(`0x${(0x80400000 + Math.min(mib / 2, 128) * 2 ** 20).toString(16)}`);
      expect(ours).toEqual(theirs);
      expect(Number(ours.end) - Number(ours.start)).toBe(initrd.length);
      // The bytes are there, first to last.
      const word = (i: number) => (initrd[i] ?? 0) | ((initrd[i + 1] ?? 0) << 8) | ((initrd[i + 2] ?? 0) << 16) | (((initrd[i + 3] ?? 0) << 24) >>> 0);
      expect(m.readPhys(Number(ours.start), 4)).toBe(word(0) >>> 0);
      expect(m.readPhys(Number(ours.end) - 4, 4)).toBe(word(initrd.length - 4) >>> 0);
    }
  });

  it("is refused without a kernel, in QEMU's words", () => {
    expect(() => new Machine({ serialOut: () => {}, bios: new Uint8Array(readFileSync(SBI)), initrd })).toThrow("-initrd only allowed with -kernel option");
  });
});
