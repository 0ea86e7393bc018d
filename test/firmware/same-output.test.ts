// The promise, checked directly: the same firmware and disk, typed at the same way,
// print the same thing on minivm and on qemu-system-riscv32, once the figures that measure
// time (and so differ between any two runs) are masked.
import { afterEach, describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { BIN } from "../helpers/vm.js";
import { PROMPT, SBI_ELF, SerialConsole, diskCopy, removeDiskCopies } from "./console.js";

const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");

const SESSION = ["help", "sbi", "disk write 1 7", "disk read 1", "disk verify 1 7", "disk verify 1 8", "bench cpu 20000", "dirty 2 0 1", "check", "uptime", "bogus", "halt"];

const TIMED = /\b(ms|us|mib_s|sweeps|pages|ticks|disk_irqs|spurious_irqs|first|last|step|write_ms|read_ms|write_kib_s|read_kib_s)=\S+/g;

function normalise(text: string): string[] {
  return text
    .replace(TIMED, "$1=#")
    .replace(/uptime: \d+\.\d{3} s/g, "uptime: #.### s")
    .split("\n");
}

async function transcript(vm: SerialConsole): Promise<string[]> {
  const seen = [await vm.waitFor(PROMPT, 60_000)];
  for (const line of SESSION.slice(0, -1)) seen.push(await vm.command(line, 60_000));
  vm.type(`${SESSION[SESSION.length - 1]}\n`);
  expect(await vm.exited).toBe(0);
  seen.push(vm.output().slice(vm.output().lastIndexOf(PROMPT) + PROMPT.length));
  return normalise(seen.join("\n--\n"));
}

let vms: SerialConsole[] = [];
afterEach(async () => {
  await Promise.all(vms.map((v) => v.kill()));
  vms = [];
  removeDiskCopies();
});

describe.skipIf(!haveQemu)("the teaching disk on minivm and on QEMU", () => {
  it("prints the same boot and the same answers to the same session", async () => {
    const qemu = new SerialConsole("qemu-system-riscv32", [
      "-M", "virt", "-m", "128M", "-bios", SBI_ELF,
      "-drive", `file=${diskCopy()},if=none,format=raw,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
      "-global", "virtio-mmio.force-legacy=false", "-nographic", "-serial", "mon:stdio",
    ]);
    const minivm = new SerialConsole(process.execPath, [BIN, "run", "-m", "128M", "--bios", SBI_ELF, diskCopy()]);
    vms = [qemu, minivm];
    const [q, m] = await Promise.all([transcript(qemu), transcript(minivm)]);
    expect(m).toEqual(q);
    expect(q.join("\n")).toContain("disk verify: mismatch at byte 0x0 (LBA 4096): 0x00000007, expected 0x00000008");
  });
});
