// The Linux guest (guests/linux), minivm and QEMU in the same run: seconds from process start
// to the Linux shell prompt, then the guest's `bench cpu` under Linux on both (the same
// integer loop and checksum as the teaching guest's). QEMU gets a CPU with exactly minivm's
// ISA, as in test/cli/linux-guest.test.ts. Prints JSON.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { LINUX_APPEND } from "../src/cli/linux-guest.js";

const repo = process.cwd();
const guest = join(repo, "guests/linux/build");
const dir = mkdtempSync(join(tmpdir(), "minivm-bench-linux-"));
const PROMPT = "linux$ ";
const QEMU_CPU = "rv32,c=off,f=off,d=off,h=off,sstc=off,zba=off,zbb=off,zbc=off,zbs=off,Zihintpause=off";

interface Guest {
  proc: ChildProcess;
  out: () => string;
}

function unpack(name: string): string {
  const path = join(dir, name.replace(/\.gz$/, ""));
  writeFileSync(path, gunzipSync(readFileSync(join(guest, name))));
  return path;
}

function start(kind: "minivm" | "qemu"): Guest {
  const args =
    kind === "minivm"
      ? [join(repo, "bin/minivm.js"), "run", "--guest", "linux", "-m", "128M"]
      : ["-M", "virt", "-cpu", QEMU_CPU, "-m", "128M", "-bios", join(repo, "firmware/build/minivm-sbi.elf"),
         "-kernel", unpack("Image.gz"), "-initrd", join(guest, "initramfs.cpio.gz"), "-append", LINUX_APPEND,
         "-drive", `file=${unpack("disk.img.gz")},if=none,format=raw,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
         "-global", "virtio-mmio.force-legacy=false", "-nographic", "-monitor", "none", "-serial", "stdio"];
  const proc = spawn(kind === "minivm" ? process.execPath : "qemu-system-riscv32", args, { stdio: ["pipe", "pipe", "ignore"] });
  let text = "";
  proc.stdout?.on("data", (d: Buffer) => (text += d.toString()));
  return { proc, out: () => text };
}

async function until(g: Guest, from: number, needle: string, timeoutMs = 300_000): Promise<number> {
  const t0 = performance.now();
  while (!g.out().slice(from).includes(needle)) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`no '${needle}' after ${timeoutMs} ms: ${g.out().slice(-300)}`);
    if (g.proc.exitCode !== null) throw new Error(`guest exited: ${g.out().slice(-300)}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return g.out().indexOf(needle, from) + needle.length;
}

function fields(text: string, prefix: string): Record<string, number> {
  const line = text.split("\n").find((l) => l.startsWith(prefix)) ?? "";
  return Object.fromEntries([...line.matchAll(/(\w+)=(0x[0-9a-f]+|\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

async function measure(kind: "minivm" | "qemu"): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const g = start(kind);
  try {
    const at = await until(g, 0, PROMPT);
    const bootSeconds = (performance.now() - t0) / 1000;
    g.proc.stdin?.write("bench cpu\n");
    const end = await until(g, at, PROMPT);
    return { boot_to_linux_prompt_s: Math.round(bootSeconds * 1000) / 1000, bench_cpu: fields(g.out().slice(at, end).replace(/\r/g, ""), "bench cpu:") };
  } finally {
    g.proc.kill("SIGKILL");
  }
}

try {
  const minivm = await measure("minivm");
  let qemu: Record<string, unknown> | null = null;
  try {
    qemu = await measure("qemu");
  } catch (e) {
    process.stderr.write(`qemu run failed: ${e instanceof Error ? e.message : String(e)}\n`);
  }
  const us = (r: Record<string, unknown> | null): number | undefined => (r?.bench_cpu as Record<string, number> | undefined)?.us;
  const ratio = (a: number | undefined, b: number | undefined): number | null => (a && b ? Math.round((a / b) * 100) / 100 : null);
  process.stdout.write(
    JSON.stringify(
      {
        suite: "linux-boot",
        minivm,
        qemu,
        ratios: {
          "boot to the Linux prompt minivm/qemu": ratio(minivm.boot_to_linux_prompt_s as number, qemu?.boot_to_linux_prompt_s as number | undefined),
          "bench cpu under Linux, time minivm/qemu": ratio(us(minivm), us(qemu)),
        },
      },
      null,
      2,
    ) + "\n",
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
