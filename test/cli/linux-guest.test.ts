// The Linux guest (guests/linux, `minivm run --guest linux`): Linux 6.1 boots through
// minivm-sbi to its shell with the root on virtio-blk, a user's commands get the right
// answers, and the same kernel, initramfs, disk and firmware on QEMU 7.2's virt board
// (with a CPU that has exactly minivm's ISA) give the same transcript, timings masked.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { LINUX_APPEND } from "../../src/cli/linux-guest.js";
import { QmpClient } from "../../src/qmp/client.js";
import { SBI_ELF, SerialConsole } from "../firmware/console.js";
import { requireTool } from "../helpers/interop.js";
import { BIN } from "../helpers/vm.js";

const GUEST = join(import.meta.dirname, "../../guests/linux/build");
const PROMPT = "linux$ ";
const BOOT_MS = 180_000;
const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");
// QEMU's CPU with minivm's extensions (riscv,isa "rv32imac_zicsr_zifencei_zca"; QEMU 7.2 does
// not name Zca), so Linux takes the
// same paths (SBI timer, no Sstc) on both.
const QEMU_CPU = "rv32,c=on,f=off,d=off,h=off,sstc=off,zba=off,zbb=off,zbc=off,zbs=off,Zihintpause=off";

const scratch: string[] = [];
let consoles: SerialConsole[] = [];
afterEach(async () => {
  for (const c of consoles) await c.kill();
  consoles = [];
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

function scratchDir(): string {
  const d = mkdtempSync(join(tmpdir(), "minivm-linux-test-"));
  scratch.push(d);
  return d;
}

function unpack(name: string, dir: string): string {
  const path = join(dir, name.replace(/\.gz$/, ""));
  writeFileSync(path, gunzipSync(readFileSync(join(GUEST, name))));
  return path;
}

/** Types a line at the Linux shell; returns what the command printed (the tty's echo removed). */
async function run(c: SerialConsole, line: string, timeoutMs = 60_000): Promise<string> {
  c.type(`${line}\n`);
  const seen = (await c.waitFor(PROMPT, timeoutMs)).slice(0, -PROMPT.length);
  const echo = seen.indexOf("\n");
  expect(seen.slice(0, echo)).toBe(line);
  return seen.slice(echo + 1);
}

const SESSION = [
  "cat /proc/cpuinfo",
  "cat /proc/interrupts",
  "ls /",
  "mount",
  "disk write 2",
  "disk verify 2",
  "disk read 2",
  "dirty 4 0 1",
  "check",
  "bench cpu 100000",
  "spawn 20",
  "spawn 1 echo hello from a child",
  "echo hello from linux",
];

async function session(c: SerialConsole): Promise<Map<string, string>> {
  const answers = new Map<string, string>();
  for (const line of SESSION) answers.set(line, await run(c, line));
  return answers;
}

/** What may differ between two correct runs: times, rates, counts, interrupt numbers. */
function masked(answers: Map<string, string>): string {
  let text = "";
  for (const [line, answer] of answers) {
    let a = answer.replace(/\b(ms|us|us_each|mib_s|sweeps|pages|first|last|step)=\w+/g, "$1=N").replace(/ at 0x[0-9a-f]{8},/, " at ADDR,");
    if (line === "cat /proc/interrupts") a = a.replace(/\d+/g, "N").replace(/ +/g, " ");
    // The machine ID CSRs name the implementation: minivm's, or QEMU's version.
    if (line === "cat /proc/cpuinfo") a = a.replace(/^(mvendorid|marchid|mimpid)(\s+): .*$/gm, "$1$2: X");
    if (line === "mount") a = a.replace(/size=\d+k,nr_inodes=\d+/, "size=N");
    text += `$ ${line}\n${a}`;
  }
  return text;
}

/** A boot log with what differs between two correct boots masked: times, the wall clock, and
 * the memory Linux reserves for the device tree (QEMU's describes more devices). */
function maskedBoot(log: string): string {
  return log
    .replace(/^minivm: QMP.*\n/m, "")
    .replace(/^\[ *\d+\.\d+\] /gm, "[T] ")
    .replace(/setting system clock to .*$/m, "setting system clock to DATE")
    .replace(/^(\[T\] Memory: ).*$/m, "$1N");
}

function expectRightAnswers(a: Map<string, string>): void {
  expect(a.get("cat /proc/cpuinfo")).toMatch(/isa\s+: rv32imac\n/);
  expect(a.get("cat /proc/cpuinfo")).toMatch(/mmu\s+: sv32\n/);
  expect(a.get("cat /proc/interrupts")).toContain("riscv-timer");
  expect(a.get("cat /proc/interrupts")).toContain("virtio0");
  expect(a.get("cat /proc/interrupts")).toContain("ttyS0");
  expect(a.get("ls /")).toBe("dev/  etc/  lost+found/  mnt/  proc/  sbin/  sys/\n");
  expect(a.get("mount")).toContain("/dev/vda1 / ext2 ro");
  expect(a.get("disk write 2")).toBe("disk write: OK 2 MiB pattern=0x5a5a5a5a\n");
  expect(a.get("disk verify 2")).toBe("disk verify: OK 2 MiB pattern=0x5a5a5a5a\n");
  expect(a.get("disk read 2")).toMatch(/^disk read: 2 MiB crc32=0x[0-9a-f]{8}\n$/);
  expect(a.get("dirty 4 0 1")).toMatch(/^dirty: 4 MiB \(1024 pages\) at 0x[0-9a-f]{8}, no rate limit, for 1 s or until Enter is pressed\ndirty: stopped sweeps=\d+ pages=\d+ ms=\d+ mib_s=\d+\n$/);
  expect(a.get("check")).toMatch(/^check: OK pages=1024 first=\d+ last=\d+ step=(\d+|none)\n$/);
  expect(a.get("bench cpu 100000")).toMatch(/^bench cpu: iterations=100000 ms=\d+ us=\d+ checksum=0x[0-9a-f]{8}\n$/);
  expect(a.get("spawn 20")).toMatch(/^spawn: processes=20 failed=0 us_each=\d+\n$/);
  expect(a.get("spawn 1 echo hello from a child")).toMatch(/^hello from a child\nspawn: processes=1 failed=0 us_each=\d+\n$/);
  expect(a.get("echo hello from linux")).toBe("hello from linux\n");
}

function minivm(args: string[], noReboot = true): SerialConsole {
  const c = new SerialConsole(process.execPath, [BIN, "run", "--guest", "linux", "-m", "128M", ...(noReboot ? ["--no-reboot"] : []), ...args]);
  consoles.push(c);
  return c;
}

async function halts(c: SerialConsole): Promise<void> {
  c.type("halt\n");
  await c.waitFor("halt: powering off\n");
  expect(await c.exited).toBe(0);
}

describe("the Linux guest on minivm", () => {
  it("boots through minivm-sbi to the shell with its root on virtio-blk, answers, and halts", async () => {
    const c = minivm([]);
    const boot = await c.waitFor(PROMPT, BOOT_MS);
    expect(boot).toContain("minivm-sbi: booting the -kernel payload at 0x80400000");
    expect(boot).toMatch(/Linux version 6\.1\.\d+-minivm \(minivm@minivm\)/);
    expect(boot).toContain(`Kernel command line: ${LINUX_APPEND}`);
    expect(boot).toContain("Unpacking initramfs");
    expect(boot).toContain("virtio_blk virtio0: [vda]");
    expect(boot).toContain("init: root is /dev/vda1 (ext2, read-only)");
    expectRightAnswers(await session(c));
    await halts(c);
  }, 300_000);

  it("shows the kernel's disk I/O in query-blockstats and reboots on system_reset", async () => {
    const dir = scratchDir();
    const sock = join(dir, "qmp.sock");
    // Without --no-reboot: with it, a reset ends the process, as QEMU's -no-reboot does.
    const c = minivm(["--qmp", `unix:${sock},server=on,wait=off`], false);
    await c.waitFor(PROMPT, BOOT_MS);
    const qmp = await QmpClient.connect(`unix:${sock}`);
    try {
      const before = (await qmp.execute("query-blockstats"))[0]?.stats;
      expect(await run(c, "disk write 1")).toBe("disk write: OK 1 MiB pattern=0x5a5a5a5a\n");
      const after = (await qmp.execute("query-blockstats"))[0]?.stats;
      expect(before?.rd_operations).toBeGreaterThan(0); // the kernel read the partition table and the ext2 root
      expect(Number(after?.wr_bytes ?? 0) - Number(before?.wr_bytes ?? 0)).toBe(1 << 20);
      expect(after?.flush_operations).toBeGreaterThan(before?.flush_operations ?? 0);
      // The vCPU thread ran Linux under the BQL.
      const bql = await qmp.execute("x-query-bql");
      const vcpu = bql.threads.find((t) => /cpu/i.test(t.thread));
      expect(vcpu, JSON.stringify(bql.threads.map((t) => t.thread))).toBeDefined();
      expect(Number(vcpu?.acquisitions)).toBeGreaterThan(0);
      expect(Number(vcpu?.["total-hold-ns"])).toBeGreaterThan(0);
      await qmp.execute("system_reset");
      const again = await c.waitFor(PROMPT, BOOT_MS);
      expect(again).toMatch(/Linux version 6\.1/);
      // The reset is a fresh boot: the disk keeps what the first boot wrote.
      expect(await run(c, "disk verify 1")).toBe("disk verify: OK 1 MiB pattern=0x5a5a5a5a\n");
    } finally {
      qmp.close();
    }
    await halts(c);
  }, 400_000);
});

describe.skipIf(!haveQemu)("the same Linux guest on QEMU 7.2", () => {
  it("boots the same kernel, initramfs, disk and minivm-sbi to the same transcript as minivm", async () => {
    const dir = scratchDir();
    const kernel = unpack("Image.gz", dir);
    const disk = unpack("disk.img.gz", dir);
    const q = new SerialConsole("qemu-system-riscv32", [
      "-M", "virt", "-cpu", QEMU_CPU, "-m", "128M", "-bios", SBI_ELF,
      "-kernel", kernel, "-initrd", join(GUEST, "initramfs.cpio.gz"), "-append", LINUX_APPEND,
      "-drive", `file=${disk},if=none,format=raw,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
      "-global", "virtio-mmio.force-legacy=false", "-nographic", "-no-reboot",
    ]);
    consoles.push(q);
    const qBoot = await q.waitFor(PROMPT, BOOT_MS);
    expect(qBoot).toContain("init: root is /dev/vda1 (ext2, read-only)");
    const onQemu = await session(q);
    expectRightAnswers(onQemu);
    await halts(q);

    const m = minivm([]);
    const mBoot = await m.waitFor(PROMPT, BOOT_MS);
    const onMinivm = await session(m);
    await halts(m);
    // The whole boot log, line for line: firmware banner, every kernel message, init. Sorted:
    // the initramfs unpacks asynchronously, so its lines may land among others' in any order.
    expect(maskedBoot(mBoot).split("\n").sort()).toEqual(maskedBoot(qBoot).split("\n").sort());
    expect(masked(onMinivm)).toBe(masked(onQemu));
    // Same pattern on the same partition, same integer loop: same numbers, not just same shape.
    expect(onMinivm.get("disk read 2")).toBe(onQemu.get("disk read 2"));
    expect(onMinivm.get("bench cpu 100000")?.replace(/ms=\d+ us=\d+ /, "")).toBe(onQemu.get("bench cpu 100000")?.replace(/ms=\d+ us=\d+ /, ""));
  }, 600_000);
});

describe.skipIf(!haveQemu)("the Linux guest on QEMU's default CPU", () => {
  it("boots: minivm-sbi lets S-mode use Sstc's stimecmp (menvcfg.STCE), as OpenSBI does", async () => {
    const dir = scratchDir();
    const q = new SerialConsole("qemu-system-riscv32", [
      "-M", "virt", "-m", "128M", "-bios", SBI_ELF,
      "-kernel", unpack("Image.gz", dir), "-initrd", join(GUEST, "initramfs.cpio.gz"), "-append", LINUX_APPEND,
      "-drive", `file=${unpack("disk.img.gz", dir)},if=none,format=raw,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
      "-nographic", "-no-reboot",
    ]);
    consoles.push(q);
    // Without STCE the kernel's first stimecmp write is an illegal instruction: an oops and a panic.
    const boot = await q.waitFor(PROMPT, BOOT_MS);
    expect(boot).toContain("riscv-timer: Timer interrupt in S-mode is available via sstc extension");
    expect(await run(q, "cat /proc/uptime")).toMatch(/^\d+\.\d+ \d+\.\d+\n$/);
    await halts(q);
  }, 300_000);
});

describe("minivm run's guest options", () => {
  it("refuses an unknown guest and an initrd without a kernel, saying why", () => {
    const r1 = spawnSync(process.execPath, [BIN, "run", "--guest", "freebsd"], { encoding: "utf8" });
    expect(r1.status).toBe(1);
    expect(r1.stderr).toBe("minivm: --guest freebsd: minivm ships these guests: linux\n");
    const r2 = spawnSync(process.execPath, [BIN, "run", "-initrd", join(GUEST, "initramfs.cpio.gz")], { encoding: "utf8" });
    expect(r2.status).toBe(1);
    expect(r2.stderr).toBe("minivm: -initrd only allowed with -kernel option\n");
  });
});
