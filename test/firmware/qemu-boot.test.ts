// minivm's own firmware and teaching disk on the real QEMU riscv32 `virt` board: the
// committed build boots to the shell there, so the same image is a fair yardstick for
// minivm. Skips without qemu-system-riscv32 unless MINIVM_REQUIRE_INTEROP=1.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { GUEST_ELF, PROMPT, SBI_ELF, SerialConsole, diskCopy, removeDiskCopies } from "./console.js";
import { expectDiskSurvivesReboot, expectPacedDirty } from "./shared-checks.js";
import { DIRTY_BASE, PAGE, checkDirtyImage } from "./dirty-image.js";

const QEMU = "qemu-system-riscv32";
const haveQemu = requireTool(QEMU, "qemu-system-misc");

function qemuArgs(disk: string, extra: string[] = []): string[] {
  return [
    "-M", "virt", "-m", "128M", "-bios", SBI_ELF,
    "-drive", `file=${disk},if=none,format=raw,id=hd0`,
    "-device", "virtio-blk-device,drive=hd0",
    "-nographic", "-serial", "mon:stdio", ...extra,
  ];
}

let vm: SerialConsole | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
  removeDiskCopies();
});

async function boot(extra: string[] = ["-global", "virtio-mmio.force-legacy=false"]): Promise<{ vm: SerialConsole; banner: string }> {
  const c = new SerialConsole(QEMU, qemuArgs(diskCopy(), extra));
  vm = c;
  const banner = await c.waitFor(PROMPT, 60_000);
  return { vm: c, banner };
}

describe.skipIf(!haveQemu)("minivm firmware on QEMU's virt board", () => {
  it("boots the teaching guest from a modern virtio-blk disk to the shell", async () => {
    const { banner } = await boot();
    expect(banner).toContain("minivm-sbi 1.0 (SBI v2.0) on riscv-virtio,qemu, 128 MiB RAM at 0x80000000");
    expect(banner).toMatch(/minivm-sbi: virtio-blk in slot \d at 0x1000[1-8]000 \(virtio-mmio version 2\), 8192 sectors/);
    expect(banner).toContain("minivm-sbi: booting partition 1 (type 0x7f, sectors 2048-4095)");
    expect(banner).toContain("minivm-sbi: entering S-mode at 0x80400000 (a0 = hart 0, a1 = DTB at 0x87e00000)");
    expect(banner).toContain("sbi: v2.0, implementation 0x4d564d");
    expect(banner).toMatch(/paging: Sv32 on, satp=0x8008[0-9a-f]{4}/);
    expect(banner).toContain("virtio-blk: data partition 2 at LBA 4096, 2048 KiB");
    expect(banner).not.toContain("plic:");
  });

  it("answers help, dirty + a key, check, disk write/verify, and exits 0 on halt", async () => {
    const { vm: c } = await boot();
    const help = await c.command("help");
    for (const name of ["dirty MIB", "check", "disk write|read|verify", "bench cpu", "uptime", "halt", "reboot"]) expect(help).toContain(name);

    c.type("dirty 4\n");
    await c.waitFor("dirty: 4 MiB (1024 pages) at 0x81000000, no rate limit, until a key is pressed\n");
    c.type("x");
    expect(await c.waitFor(PROMPT)).toMatch(/dirty: stopped sweeps=\d+ pages=\d+ ms=\d+ mib_s=\d+/);
    expect(await c.command("check")).toMatch(/^check\ncheck: OK pages=1024 first=\d+ last=\d+ step=(\d+|none)\n$/);

    expect(await c.command("disk write 1")).toContain("disk write: OK 1 MiB pattern=0x5a5a5a5a");
    expect(await c.command("disk verify 1")).toContain("disk verify: OK 1 MiB pattern=0x5a5a5a5a");
    expect(await c.command("disk verify 1 0x1234")).toContain("disk verify: mismatch at byte 0x0 (LBA 4096): 0x5a5a5a5a, expected 0x00001234");
    // Every request so far completed by a PLIC interrupt, none spurious.
    expect(await c.command("uptime")).toMatch(/uptime: \d+\.\d{3} s ticks=\d+ disk_irqs=[1-9]\d* spurious_irqs=0\n/);

    c.type("halt\n");
    await c.waitFor("minivm-sbi: shutdown");
    expect(await c.exited).toBe(0);
  });

  it("leaves a RAM image, stopped mid-sweep, that passes the migration test's check from outside", async () => {
    const { vm: c } = await boot();
    c.type("dirty 4\n");
    await c.waitFor("until a key is pressed\n");
    const image = join(mkdtempSync(join(tmpdir(), "minivm-dirty-")), "ram.bin");
    // Ctrl-A c: QEMU's mux hands stdin to the monitor; the VM stops wherever the sweep is.
    c.type("\x01c");
    await c.waitFor("(qemu) ");
    c.type("stop\n");
    await c.waitFor("(qemu) ");
    c.type(`pmemsave 0x${DIRTY_BASE.toString(16)} ${1024 * PAGE} "${image}"\n`);
    await c.waitFor("(qemu) ");
    c.type("cont\n");
    await c.waitFor("(qemu) ");
    c.type("\x01c");
    expect(existsSync(image)).toBe(true);
    const ram = readFileSync(image);
    rmSync(join(image, ".."), { recursive: true, force: true });
    expect(checkDirtyImage(ram, 1024)).toBeNull();
    // A page that moved or a counter that went backwards is caught.
    const broken = Buffer.from(ram);
    broken[100 * PAGE] = ((broken[100 * PAGE] as number) + 7) & 0xff;
    expect(checkDirtyImage(broken, 1024)).toMatchObject({ page: expect.any(Number) });
    c.type("x");
    await c.waitFor(/dirty: stopped sweeps=\d+/);
    await c.waitFor(PROMPT);
    expect(await c.command("check")).toMatch(/check: OK pages=1024/);
  });

  it("holds dirty to the rate asked for and stops by itself after SECONDS", async () => {
    const { vm: c } = await boot();
    await expectPacedDirty(c);
  });

  it("keeps what disk write wrote across a reboot", async () => {
    const { vm: c } = await boot();
    await expectDiskSurvivesReboot(c);
  });

  it("prints machine-readable bench results with a checksum that pins the work done", async () => {
    const { vm: c } = await boot();
    expect(await c.command("bench cpu 100000")).toMatch(/bench cpu: iterations=100000 ms=\d+ us=\d+ checksum=0x76ac9c6d\n/);
    expect(await c.command("bench disk 1")).toMatch(/bench disk: bytes=1048576 request=65536 requests=33 write_ms=\d+ read_ms=\d+ write_kib_s=\d+ read_kib_s=\d+/);
  });

  it("probes its firmware: every extension there, HSM, an IPI that comes back, an illegal instruction handed down, RFENCE", async () => {
    const { vm: c } = await boot();
    const out = await c.command("sbi");
    expect(out).toContain("sbi: spec v2.0 implementation 0x4d564d version 0x10000");
    expect(out).toContain("sbi: extensions base=1 time=1 ipi=1 rfence=1 hsm=1 srst=1 dbcn=1 pmu=0 legacy-putchar=1");
    expect(out).toContain("sbi: hsm hart 0 status=0 error=0; hart 1 error=-3");
    expect(out).toContain("sbi: ipi to self error=0 delivered");
    expect(out).toContain("sbi: illegal instruction came back as scause=2 stval=0x300022f3");
    expect(out).toContain("sbi: rfence fence.i error=0 sfence.vma error=0, to a missing hart error=-3");
  });

  it("powers off with status 2, saying why, when the disk holds nothing to boot", async () => {
    const blank = diskCopy();
    writeFileSync(blank, Buffer.alloc(1 << 20));
    vm = new SerialConsole(QEMU, qemuArgs(blank, ["-global", "virtio-mmio.force-legacy=false"]));
    await vm.waitFor("minivm-sbi: no partition of type 0x7f and no ELF at sector 0\nminivm-sbi: nothing to boot; powering off");
    expect(await vm.exited).toBe(2);
  });

  it("boots a -kernel payload without a disk, as OpenSBI's fw_dynamic would", async () => {
    vm = new SerialConsole(QEMU, ["-M", "virt", "-m", "128M", "-bios", SBI_ELF, "-kernel", GUEST_ELF, "-nographic", "-serial", "mon:stdio"]);
    const banner = await vm.waitFor(PROMPT, 60_000);
    expect(banner).toContain("minivm-sbi: booting the -kernel payload at 0x80400000");
    expect(banner).toContain("virtio-blk: none found; the disk commands are off");
    expect(await vm.command("disk verify 1")).toContain("disk: no data partition on a virtio-blk disk");
  });

  it("also boots from a legacy (version 1) virtio-mmio disk, QEMU 7.2's default", async () => {
    const { banner } = await boot([]);
    expect(banner).toMatch(/\(virtio-mmio version 1\)/);
    expect(banner).toContain("virtio-blk: data partition 2 at LBA 4096, 2048 KiB");
  });
});
