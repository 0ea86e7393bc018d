// The assembled board: boot, device tree (against QEMU's, via dtc), slices and their
// results, reset, the dirty bitmap, HTIF, serial input and the HMP views.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_RAM_SIZE, Machine } from "../../src/core/machine.js";
import { createSharedRegions } from "../../src/core/regions.js";
import { kickCore } from "../../src/core/shared.js";
import { hasQemu, hasTool, QEMU_CPU, runOnMinivm } from "../cpu/harness.js";
import { writeElf } from "../cpu/elf-writer.js";
import { enc, li, lui, sw } from "../cpu/rv-asm.js";

const ELF_DIR = new URL("../../firmware/tests/build/", import.meta.url).pathname;
const elf = (name: string) => new Uint8Array(readFileSync(`${ELF_DIR}${name}.elf`));
const hasDtc = hasTool("dtc");
const tmp = mkdtempSync(join(tmpdir(), "minivm-machine-"));

/** A flat program at 0x80000000 as an ELF. */
function program(words: number[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const dv = new DataView(bytes.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return writeElf([{ addr: 0x80000000, bytes }], 0x80000000);
}
const J_SELF = enc.j(0, 0);
const WFI = 0x10500073;

/** dtc's DTS output as a map from node path to its property lines. */
function parseDts(dts: string): Map<string, Map<string, string>> {
  const nodes = new Map<string, Map<string, string>>();
  const stack: string[] = [];
  for (const raw of dts.split("\n")) {
    const line = raw.trim();
    if (line.endsWith("{")) {
      const name = line.slice(0, -1).trim();
      stack.push(name === "/" ? "" : name);
      nodes.set(stack.join("/") || "/", new Map());
    } else if (line === "};") {
      stack.pop();
    } else if (line.endsWith(";") && stack.length > 0) {
      const body = line.slice(0, -1);
      const eq = body.indexOf(" = ");
      const key = eq < 0 ? body : body.slice(0, eq);
      nodes.get(stack.join("/") || "/")?.set(key, eq < 0 ? "" : body.slice(eq + 3));
    }
  }
  return nodes;
}

function dtsOf(dtb: Uint8Array): string {
  const path = join(tmp, `x${Math.random()}.dtb`);
  writeFileSync(path, dtb);
  const r = spawnSync("dtc", ["-I", "dtb", "-O", "dts", path], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dtc failed: ${r.stderr}`);
  return r.stdout;
}

describe("Machine", () => {
  it("boots an ELF at 0x80000000 with QEMU's a0/a1/a2 and runs it to the finisher", () => {
    const r = runOnMinivm(elf("boot"));
    expect(r.status).toBe(0);
    expect(r.output.split("\n")[0]).toBe("00000000 87e00000 00001028 ");
    expect(r.output).toContain("4942534f 00000002 80000000 00000001 00000000 00000000");
  });

  it("places the DTB 2 MiB-aligned below the end of a smaller RAM", () => {
    const m = new Machine({ serialOut: () => {}, ramSize: 64 * 1024 * 1024 });
    expect(m.dtbAddress).toBe(0x83e00000);
    expect(m.readPhys(0x1020, 4)).toBe(0x83e00000);
    expect(m.readPhys(0x83e00000, 4)).toBe(0xedfe0dd0);
  });

  it("reports the finisher's fail code as a guest-panic shutdown, and keeps reporting it until reset", () => {
    const code = (7 << 16) | 0x3333;
    const m = new Machine({ serialOut: () => {}, kernel: program([...li(5, 0x100000), ...li(6, code), sw(5, 6, 0), J_SELF]) });
    expect(m.runSlice(1000)).toEqual({ kind: "shutdown", code: 7, reason: "guest-panic" });
    expect(m.runSlice(1000)).toEqual({ kind: "shutdown", code: 7, reason: "guest-panic" });
    m.reset();
    expect(m.cpuState().pc).toBe(0x1000);
    expect(m.runSlice(1000).kind).toBe("shutdown");
  });

  it("returns reset for the finisher's 0x7777, and reset() restarts from the ROM with the ELF reloaded", () => {
    const m = new Machine({
      serialOut: () => {},
      kernel: program([...li(5, 0x100000), ...li(6, 0x7777), sw(5, 6, 0), J_SELF]),
    });
    expect(m.runSlice(1000)).toEqual({ kind: "reset", reason: "guest-reset" });
    // Scribble over the kernel: reset must load it again (QEMU re-copies ROM blobs).
    m.ram.store32(0x80000000, 0);
    m.reset();
    expect(m.ram.load32(0x80000000)).not.toBe(0);
    expect(m.runSlice(1000)).toEqual({ kind: "reset", reason: "guest-reset" });
  });

  it("ends a slice on budget and on an exit request", () => {
    const regions = createSharedRegions({ ramSize: DEFAULT_RAM_SIZE });
    const m = new Machine({ serialOut: () => {}, regions, kernel: program([J_SELF]) });
    expect(m.runSlice(10_000)).toEqual({ kind: "budget" });
    const before = m.cpu.instret;
    // What another thread's kick does: hart 0's exit request in the shared control words.
    kickCore(new Int32Array(regions.control));
    expect(m.runSlice(10_000)).toEqual({ kind: "exit-request" });
    expect(m.cpu.instret).toBe(before);
  });

  it("goes idle on WFI with nothing pending and names the timer deadline when MTIE is on", () => {
    let now = 1_000_000;
    const m = new Machine({ serialOut: () => {}, now: () => now, kernel: program([WFI, J_SELF]) });
    const r = m.runSlice(1000);
    expect(r).toEqual({ kind: "idle", wakeAtNs: null });
    expect(m.cpuState().halted).toBe(true);
    // mtimecmp = mtime + 50 (5 us at 10 MHz), MTIE on: the wake-up time is that deadline.
    m.clint.write(0x4000, 4, 50);
    m.clint.write(0x4004, 4, 0);
    m.cpu.mie = 0x80;
    expect(m.runSlice(1000)).toEqual({ kind: "idle", wakeAtNs: now + 5000 });
    now += 5000;
    expect(m.runSlice(1000).kind).toBe("budget");
    expect(m.cpuState().halted).toBe(false);
  });

  it("marks pages dirty on guest stores and on DMA, in a bitmap other threads can share", () => {
    const regions = createSharedRegions({ ramSize: 4 * 1024 * 1024 });
    const { dirty: dirtyBitmap, ram } = regions;
    const m = new Machine({
      serialOut: () => {},
      regions,
      kernel: program([lui(5, 0x80123), sw(5, 0, 0x10), lui(6, 0x80200), sw(6, 5, -4), J_SELF]),
    });
    const bits = new Int32Array(dirtyBitmap);
    bits.fill(0);
    m.runSlice(100);
    const page = (a: number) => (a - 0x80000000) >>> 12;
    const isSet = (p: number) => (Atomics.load(bits, p >>> 5) >>> (p & 31)) & 1;
    expect(isSet(page(0x80123010))).toBe(1);
    expect(isSet(page(0x801ffffc))).toBe(1);
    expect(isSet(page(0x80124000))).toBe(0);
    expect(new DataView(ram).getUint32(0x123010, true)).toBe(0);
    m.ram.dmaWrite(0x80300ffe, new Uint8Array(4));
    expect(isSet(page(0x80300000))).toBe(1);
    expect(isSet(page(0x80301000))).toBe(1);
  });

  it("ends the run through HTIF tohost for ELFs that define it", () => {
    const r = runOnMinivm(elf("htif"));
    expect(r.output).toBe("htif\n");
    expect(r.status).toBe(3);
  });

  it("delivers typed bytes through the UART receiver", () => {
    // poll LSR.DR, echo RBR to THR forever
    const words = [
      ...li(5, 0x10000000),
      enc.i(0x03, 4, 6, 5, 5), // lbu t1, 5(t0)
      enc.i(0x13, 7, 6, 6, 1), // andi t1, t1, 1
      enc.b(0, 6, 0, -8), // beqz t1, back
      enc.i(0x03, 4, 7, 5, 0), // lbu t2, 0(t0)
      enc.s(0x23, 0, 5, 7, 0), // sb t2, 0(t0)
      enc.j(0, -20),
    ];
    const out: number[] = [];
    const m = new Machine({ serialOut: (b) => out.push(...b), kernel: program(words) });
    m.runSlice(10_000);
    m.serialInput(new TextEncoder().encode("hello, guest"));
    m.runSlice(100_000);
    expect(new TextDecoder().decode(Uint8Array.from(out))).toBe("hello, guest");
  });

  it("refuses an ELF with a segment outside RAM, naming the address", () => {
    const bad = writeElf([{ addr: 0x70000000, bytes: new Uint8Array(4) }], 0x70000000);
    expect(() => new Machine({ serialOut: () => {}, kernel: bad })).toThrow(/0x70000000.*outside RAM/);
  });

  it("never throws on illegal guest behaviour: a page-fault storm just keeps trapping", () => {
    // mtvec = 0x90000000 (a hole): every trap refetches from a hole, forever.
    const m = new Machine({ serialOut: () => {}, kernel: program([...li(5, 0x90000000), enc.i(0x73, 1, 0, 5, 0x305), 0xffffffff]) });
    expect(m.runSlice(100_000)).toEqual({ kind: "budget" });
    expect(m.cpu.mcause).toBe(1);
    expect(m.cpu.mepc >>> 0).toBe(0x90000000);
  });

  it("prints info registers in QEMU's layout", () => {
    const m = new Machine({ serialOut: () => {} });
    const text = m.infoRegisters();
    expect(text.split("\n")[0]).toBe("CPU#0");
    expect(text).toContain(" pc       00001000\n");
    expect(text).toContain(" mip      00000080\n");
    expect(text).toContain(" x0/zero  00000000 x1/ra    00000000 x2/sp    00000000 x3/gp    00000000\n");
    expect(m.cpuState()).toEqual({ pc: 0x1000, mode: "M", halted: false, instret: 0 });
  });

  it.skipIf(!hasQemu())("prints the same info registers as QEMU at reset (integer part)", () => {
    const r = spawnSync(
      "qemu-system-riscv32",
      ["-M", "virt", "-cpu", QEMU_CPU, "-bios", "none", "-S", "-monitor", "stdio", "-display", "none", "-serial", "none"],
      { input: "info registers\nquit\n", encoding: "latin1", timeout: 20_000 },
    );
    const q = r.stdout.split(/\r?\n/).filter((l) => /^( [a-z]|CPU#)/.test(l) && !/^ f\d/.test(l)).map((l) => l.trimEnd());
    const ours = new Machine({ serialOut: () => {}, rvc: false }).infoRegisters().trimEnd().split("\n").map((l) => l.trimEnd());
    expect(ours).toEqual(q);
  });

  it.skipIf(!hasQemu() || !hasDtc)("describes its devices in the DTB exactly as QEMU's virt does", () => {
    const qemuDtb = join(tmp, "qemu.dtb");
    const q = spawnSync("qemu-system-riscv32", ["-M", `virt,dumpdtb=${qemuDtb}`, "-cpu", QEMU_CPU, "-m", "128M", "-bios", "none", "-nographic"]);
    expect(q.status).toBe(0);
    const theirs = parseDts(dtsOf(new Uint8Array(readFileSync(qemuDtb))));
    const ours = parseDts(dtsOf(new Machine({ serialOut: () => {}, rvc: false }).dumpDtb()));
    const expected = [
      "/", "/chosen", "/poweroff", "/reboot", "/memory@80000000", "/cpus", "/cpus/cpu@0",
      "/cpus/cpu@0/interrupt-controller", "/cpus/cpu-map", "/cpus/cpu-map/cluster0", "/cpus/cpu-map/cluster0/core0",
      "/soc", "/soc/rtc@101000", "/soc/serial@10000000", "/soc/test@100000", "/soc/plic@c000000", "/soc/clint@2000000",
      ...Array.from({ length: 8 }, (_, n) => `/soc/virtio_mmio@1000${n + 1}000`),
    ];
    expect([...ours.keys()].sort()).toEqual([...expected].sort());
    for (const path of expected) {
      const mine = ours.get(path);
      const qemu = theirs.get(path);
      expect(qemu, `QEMU has ${path}`).toBeDefined();
      for (const [k, v] of mine ?? []) {
        if (path === "/cpus/cpu@0" && k === "riscv,isa") {
          // QEMU adds zihintpause; minivm runs PAUSE as the FENCE it encodes.
          expect(v).toBe('"rv32ima_zicsr_zifencei"');
          continue;
        }
        expect(`${path} ${k} = ${qemu?.get(k)}`).toBe(`${path} ${k} = ${v}`);
      }
      // Properties QEMU has that minivm leaves out on purpose: the random seed.
      for (const k of qemu?.keys() ?? []) {
        if (k === "rng-seed") continue;
        expect(mine?.has(k), `${path} ${k}`).toBe(true);
      }
    }
  });

  it.skipIf(!hasDtc)("names its ISA in riscv,isa: C and Zca by default, neither with -cpu rv32,c=false", () => {
    const isa = (rvc: boolean) => parseDts(dtsOf(new Machine({ serialOut: () => {}, rvc }).dumpDtb())).get("/cpus/cpu@0")?.get("riscv,isa");
    expect(isa(true)).toBe('"rv32imac_zicsr_zifencei_zca"');
    expect(isa(false)).toBe('"rv32ima_zicsr_zifencei"');
  });

  it("lists its memory regions like info mtree", () => {
    const t = new Machine({ serialOut: () => {} }).mtree();
    expect(t).toContain("    0000000000001000-000000000000ffff (prio 0, rom): riscv_virt_board.mrom\n");
    expect(t).toContain("    0000000010000000-0000000010000007 (prio 0, i/o): serial\n");
    expect(t).toContain("    0000000080000000-0000000087ffffff (prio 0, ram): riscv_virt_board.ram\n");
  });
});

describe("Machine boot images", () => {
  it("loads a raw kernel 4 MiB-aligned after the firmware and hands its address on in fw_dynamic_info", () => {
    const bios = new Uint8Array(0x1000);
    const kernel = new Uint8Array([0x13, 0, 0, 0]);
    const m = new Machine({ serialOut: () => {}, bios, kernel });
    expect(m.readPhys(0x1028 + 8, 4)).toBe(0x80400000);
    expect(m.readPhys(0x80400000, 4)).toBe(0x13);
    const bare = new Machine({ serialOut: () => {}, kernel });
    expect(bare.readPhys(0x1028 + 8, 4)).toBe(0x80000000);
  });
});

describe("Machine clock", () => {
  it("freezes mtime between stopClock() and startClock(), as QEMU's virtual clock stops on stop", () => {
    let host = 0;
    const m = new Machine({ serialOut: () => {}, now: () => host });
    host = 1_000_000;
    expect(m.clint.mtime()).toBe(10_000);
    m.stopClock();
    host = 5_000_000;
    expect(m.clint.mtime()).toBe(10_000);
    m.startClock();
    host = 6_000_000;
    expect(m.clint.mtime()).toBe(20_000);
  });

  it("reports WFI wake-up times in the host clock after a pause", () => {
    let host = 0;
    const m = new Machine({ serialOut: () => {}, now: () => host, kernel: program([WFI, J_SELF]) });
    m.stopClock();
    host = 3_000_000;
    m.startClock();
    m.clint.write(0x4000, 4, 100); // mtime 100 = 10 us of guest time
    m.clint.write(0x4004, 4, 0);
    m.cpu.mie = 0x80;
    expect(m.runSlice(1000)).toEqual({ kind: "idle", wakeAtNs: 3_000_000 + 10_000 });
  });
});
