// docs/boot-format.md promises that a disk made by hand with sfdisk + dd boots. This runs
// the page's own command block, so the page cannot drift from what works: the result must
// be byte-identical to the committed disk and boot to the shell on QEMU.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { DISK_IMG, PROMPT, SBI_ELF, SerialConsole } from "./console.js";

const ROOT = join(import.meta.dirname, "../..");
const haveSfdisk = requireTool("sfdisk", "fdisk");
const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");

/** The first ```sh block under the "Make a disk by hand" heading. */
function handMadeDiskRecipe(): string {
  const page = readFileSync(join(ROOT, "docs/boot-format.md"), "utf8");
  const section = page.slice(page.indexOf("## Make a disk by hand"));
  const m = /```sh\n([\s\S]*?)```/.exec(section);
  if (!m?.[1]) throw new Error("docs/boot-format.md lost its sfdisk + dd recipe");
  return m[1];
}

/** The firmware's lines in the page's sample boot output. */
function documentedBootLines(): string[] {
  const page = readFileSync(join(ROOT, "docs/boot-format.md"), "utf8");
  const section = page.slice(page.indexOf("Both print the same lines"));
  const m = /```\n([\s\S]*?)```/.exec(section);
  if (!m?.[1]) throw new Error("docs/boot-format.md lost its sample boot output");
  return m[1].split("\n").filter((l) => l.startsWith("minivm-sbi"));
}

let vm: SerialConsole | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
});

describe.skipIf(!haveSfdisk)("the boot format's hand-made disk", () => {
  const dir = mkdtempSync(join(tmpdir(), "minivm-bootfmt-"));
  const disk = join(dir, "hand.img");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is byte-identical to the committed firmware/build/disk.img", () => {
    execFileSync("sh", ["-e", "-c", handMadeDiskRecipe()], {
      cwd: ROOT,
      env: { ...process.env, DISK: disk, PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` },
    });
    expect(readFileSync(disk).equals(readFileSync(DISK_IMG))).toBe(true);
  });

  it.skipIf(!haveQemu)("boots to the shell on QEMU, printing what the page shows", async () => {
    vm = new SerialConsole("qemu-system-riscv32", [
      "-M", "virt", "-m", "128M", "-bios", SBI_ELF,
      "-drive", `file=${disk},if=none,format=raw,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
      "-global", "virtio-mmio.force-legacy=false", "-nographic", "-serial", "mon:stdio",
    ]);
    const banner = await vm.waitFor(PROMPT, 60_000);
    expect(banner).toContain("minivm-sbi: booting partition 1 (type 0x7f, sectors 2048-4095)");
    const documented = documentedBootLines();
    expect(documented.length).toBeGreaterThan(3);
    for (const line of documented) expect(banner).toContain(line);
    vm.type("halt\n");
    expect(await vm.exited).toBe(0);
  });
});
