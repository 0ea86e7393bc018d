// The same committed firmware and disk on minivm itself: a real `minivm run` process, typed
// at through its serial console on stdio, exactly as test/firmware/qemu-boot.test.ts does on
// QEMU, and the answers must read the same.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { BIN, tempDir } from "../helpers/vm.js";
import { DIRTY_BASE, PAGE, checkDirtyImage } from "./dirty-image.js";
import { GUEST_ELF, PROMPT, SBI_ELF, SerialConsole, diskCopy, removeDiskCopies } from "./console.js";
import { expectDiskSurvivesReboot, expectPacedDirty } from "./shared-checks.js";

let vm: SerialConsole | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
  removeDiskCopies();
});

async function boot(): Promise<{ vm: SerialConsole; banner: string }> {
  const c = new SerialConsole(process.execPath, [BIN, "run", "--bios", SBI_ELF, diskCopy()]);
  vm = c;
  const banner = await c.waitFor(PROMPT, 60_000);
  return { vm: c, banner };
}

describe("minivm firmware on minivm", () => {
  it("boots the teaching guest from the disk with the same banner as on QEMU", async () => {
    const { banner } = await boot();
    expect(banner).toContain("minivm-sbi 1.0 (SBI v2.0) on riscv-virtio,qemu, 128 MiB RAM at 0x80000000");
    expect(banner).toMatch(/minivm-sbi: virtio-blk in slot \d at 0x1000[1-8]000 \(virtio-mmio version 2\), 8192 sectors/);
    expect(banner).toContain("minivm-sbi: booting partition 1 (type 0x7f, sectors 2048-4095)");
    expect(banner).toContain("minivm-sbi: entering S-mode at 0x80400000 (a0 = hart 0, a1 = DTB at 0x87e00000)");
    expect(banner).toContain("sbi: v2.0, implementation 0x4d564d");
    expect(banner).toMatch(/paging: Sv32 on, satp=0x8008[0-9a-f]{4}/);
    expect(banner).toContain("timer: 100 Hz through SBI TIME");
    expect(banner).toContain("virtio-blk: data partition 2 at LBA 4096, 2048 KiB");
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
    expect(await c.command("uptime")).toMatch(/uptime: \d+\.\d{3} s ticks=\d+/);

    c.type("halt\n");
    await c.waitFor("minivm-sbi: shutdown");
    expect(await c.exited).toBe(0);
  });

  it("holds dirty to the rate asked for and stops by itself after SECONDS", async () => {
    const { vm: c } = await boot();
    await expectPacedDirty(c);
  });

  it("keeps what disk write wrote across the guest's reboot", async () => {
    const { vm: c } = await boot();
    await expectDiskSurvivesReboot(c);
  });

  it("probes its firmware the same way: every extension there, HSM, an IPI that comes back, an illegal instruction handed down, RFENCE", async () => {
    const { vm: c } = await boot();
    const out = await c.command("sbi");
    expect(out).toContain("sbi: extensions base=1 time=1 ipi=1 rfence=1 hsm=1 srst=1 dbcn=1 pmu=0 legacy-putchar=1");
    expect(out).toContain("sbi: hsm hart 0 status=0 error=0; hart 1 error=-3");
    expect(out).toContain("sbi: ipi to self error=0 delivered");
    expect(out).toContain("sbi: illegal instruction came back as scause=2 stval=0x300022f3");
    expect(out).toContain("sbi: rfence fence.i error=0 sfence.vma error=0, to a missing hart error=-3");
  });

  it("boots a --kernel payload without a disk through the boot ROM's fw_dynamic info", async () => {
    vm = new SerialConsole(process.execPath, [BIN, "run", "--bios", SBI_ELF, "--kernel", GUEST_ELF]);
    const banner = await vm.waitFor(PROMPT, 60_000);
    expect(banner).toContain("minivm-sbi: booting the -kernel payload at 0x80400000");
    expect(banner).toContain("virtio-blk: none found; the disk commands are off");
    vm.type("halt\n");
    expect(await vm.exited).toBe(0);
  });

  it("shows the guest's disk writes in query-blockstats, with a histogram set over QMP before the run", async () => {
    const dir = tempDir();
    const sock = join(dir, "qmp.sock");
    vm = new SerialConsole(process.execPath, [BIN, "run", "-S", "--qmp", `unix:${sock},server=on,wait=off`, "--bios", SBI_ELF, diskCopy()]);
    await vm.waitFor("QMP monitor listening on");
    const qmp = await QmpClient.connect(`unix:${sock}`);
    try {
      const [blk] = await qmp.execute("query-block");
      const id = blk?.qdev ?? "";
      await qmp.execute("block-latency-histogram-set", { id, boundaries: [100_000, 10_000_000, 1_000_000_000] });
      await qmp.execute("cont");
      await vm.waitFor(PROMPT, 60_000);
      const before = (await qmp.execute("query-blockstats"))[0]?.stats;
      expect(await vm.command("disk write 1")).toContain("disk write: OK 1 MiB");
      const after = (await qmp.execute("query-blockstats"))[0]?.stats;
      if (!before || !after) throw new Error("query-blockstats listed no device");
      // 1 MiB in the guest's 64 KiB requests, then one flush.
      expect(Number(after.wr_operations) - Number(before.wr_operations)).toBe(16);
      expect(Number(after.wr_bytes) - Number(before.wr_bytes)).toBe(1024 * 1024);
      expect(Number(after.flush_operations) - Number(before.flush_operations)).toBe(1);
      const bins = (after.wr_latency_histogram?.bins ?? []).map(Number);
      expect(bins).toHaveLength(4);
      expect(bins.reduce((a, b) => a + b, 0)).toBe(Number(after.wr_operations));
    } finally {
      qmp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps what disk write wrote across a QMP system_reset, and boots the same again", async () => {
    const dir = tempDir();
    const sock = join(dir, "qmp.sock");
    vm = new SerialConsole(process.execPath, [BIN, "run", "--qmp", `unix:${sock},server=on,wait=off`, "--bios", SBI_ELF, diskCopy()]);
    await vm.waitFor("QMP monitor listening on");
    const qmp = await QmpClient.connect(`unix:${sock}`);
    try {
      const first = await vm.waitFor(PROMPT, 60_000);
      expect(await vm.command("disk write 1 0xc0ffee")).toContain("disk write: OK 1 MiB pattern=0x00c0ffee");
      const reset = qmp.waitEvent("RESET");
      await qmp.execute("system_reset");
      await reset;
      const again = await vm.waitFor(PROMPT, 60_000);
      expect(again).toContain("minivm-sbi 1.0 (SBI v2.0) on riscv-virtio,qemu");
      // The machine came back as it started: the same boot, line for line.
      const boot = (t: string): string => t.slice(t.indexOf("minivm-sbi 1.0"), t.indexOf("Type 'help' for commands."));
      expect(boot(again)).toBe(boot(first));
      expect(boot(first)).toContain("paging: Sv32 on");
      expect(await vm.command("disk verify 1 0xc0ffee")).toContain("disk verify: OK 1 MiB pattern=0x00c0ffee");
    } finally {
      qmp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves RAM, stopped over QMP mid-sweep, that passes the migration test's check from outside", async () => {
    const dir = tempDir();
    const sock = join(dir, "qmp.sock");
    vm = new SerialConsole(process.execPath, [BIN, "run", "--qmp", `unix:${sock},server=on,wait=off`, "--bios", SBI_ELF, diskCopy()]);
    await vm.waitFor("QMP monitor listening on");
    const qmp = await QmpClient.connect(`unix:${sock}`);
    try {
      await vm.waitFor(PROMPT, 60_000);
      vm.type("dirty 1\n");
      await vm.waitFor("until a key is pressed\n");
      await qmp.execute("stop");
      // minivm has no pmemsave yet: read each page's counter and tag with HMP xp.
      const pages = 256;
      const image = Buffer.alloc(pages * PAGE);
      for (let p = 0; p < pages; p++) {
        const addr = DIRTY_BASE + p * PAGE;
        const out = await qmp.execute("human-monitor-command", { "command-line": `xp /8bx 0x${addr.toString(16)}` });
        const bytes = [...out.matchAll(/0x([0-9a-f]{2})\b/g)].map((m) => parseInt(m[1] as string, 16));
        expect(bytes).toHaveLength(8);
        image.set(bytes, p * PAGE);
      }
      expect(checkDirtyImage(image, pages)).toBeNull();
      await qmp.execute("cont");
      vm.type("x");
      await vm.waitFor(/dirty: stopped sweeps=\d+/);
      await vm.waitFor(PROMPT);
      expect(await vm.command("check")).toMatch(/check: OK pages=256/);
    } finally {
      qmp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs bench cpu to the same checksum as QEMU", async () => {
    const { vm: c } = await boot();
    // 0x76ac9c6d is what the same 100000 iterations give on qemu-system-riscv32 7.2.
    expect(await c.command("bench cpu 100000")).toMatch(/bench cpu: iterations=100000 ms=\d+ us=\d+ checksum=0x76ac9c6d\n/);
  });
});
