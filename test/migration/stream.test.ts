// A stream written from a real Machine loads into a second one and the guest goes on exactly
// as an uninterrupted run; QEMU 7.2's own analyze-migration.py reads the same stream.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { loadMigrationStream } from "../../src/migration/load.js";
import { QemuFileWriter } from "../../src/migration/qemu-file.js";
import { RamSaver } from "../../src/migration/ram-stream.js";
import { MigrationStreamWriter, vmdescJson } from "../../src/migration/stream.js";
import type { VmdescDevice } from "../../src/migration/vmstate-json.js";
import { qemuSourceFile } from "../helpers/interop.js";
import { Collector, kernel, readerOf, runToEnd, SMALL_RAM, streamOf, targetOf } from "./stream-helpers.js";

describe("migration stream round trip", () => {
  for (const name of ["alu", "sv32", "amo"]) {
    it(`${name}.elf stopped mid-run continues on a second machine loaded from the stream`, async () => {
      const k = kernel(name);
      const whole: number[] = [];
      const ref = new Machine({ serialOut: (b) => whole.push(...b), kernel: k, ramSize: SMALL_RAM });
      const refEnd = runToEnd(ref);
      const first: number[] = [];
      const src = new Machine({ serialOut: (b) => first.push(...b), kernel: k, ramSize: SMALL_RAM });
      src.runSlice(ref.cpu.instret > 20_000 ? 20_000 : Math.floor(ref.cpu.instret / 2));
      const bytes = await streamOf(src);
      const second: number[] = [];
      const dst = new Machine({ serialOut: (b) => second.push(...b), kernel: k, ramSize: SMALL_RAM });
      // Odd chunk sizes split headers, names and pages across reads.
      const res = await loadMigrationStream(readerOf(bytes, 1000), targetOf(dst));
      expect(res.machineName).toBe("virt");
      expect(res.zeroPages + res.normalPages).toBe(SMALL_RAM / 4096);
      expect(Buffer.from(dst.ram.bytes).equals(Buffer.from(src.ram.bytes))).toBe(true);
      expect(runToEnd(dst)).toEqual(refEnd);
      expect(Buffer.from([...first, ...second]).toString("latin1")).toBe(Buffer.from(whole).toString("latin1"));
    });
  }

  it("carries pages dirtied between passes: PART sections, then END with the rest", async () => {
    const src = new Machine({ serialOut: () => {}, kernel: kernel("alu"), ramSize: SMALL_RAM });
    const sink = new Collector();
    const f = new QemuFileWriter(sink);
    const w = new MigrationStreamWriter(f);
    const ram = new RamSaver({ ram: src.ram.bytes, dirty: src.ram.dirty });
    w.writeHeader();
    w.ramStart(ram);
    expect(ram.syncCount).toBe(1);
    expect(ram.remainingPages).toBe(SMALL_RAM / 4096);
    const partBytes = w.ramPart(ram, 1024);
    expect(partBytes).toBeLessThan(1024 + 4096 + 64);
    expect(ram.remainingPages).toBeGreaterThan(0);
    while (ram.remainingPages > 0) w.ramPart(ram, 1 << 20);
    // The guest writes after the pass: those pages are dirty again and go in the END.
    src.ram.dmaWrite(0x80000000 + 0x3000, Uint8Array.of(1, 2, 3));
    src.ram.dmaWrite(0x80000000 + 0x200000, Uint8Array.of(9));
    expect(ram.syncDirtyBitmap()).toBe(2);
    await w.ramEnd(ram, { sync: false });
    const vmdesc: VmdescDevice[] = [];
    w.devices(src.save(vmdesc), vmdesc);
    w.finish();
    await f.flush();
    expect(f.bytesWritten).toBe(sink.bytes().length);
    const dst = new Machine({ serialOut: () => {}, kernel: kernel("alu"), ramSize: SMALL_RAM });
    await loadMigrationStream(readerOf(sink.bytes()), targetOf(dst));
    expect(Buffer.from(dst.ram.bytes).equals(Buffer.from(src.ram.bytes))).toBe(true);
    expect(dst.cpu.pc).toBe(src.cpu.pc);
  });

  it("writes QEMU's header, configuration and RAM START as QEMU 7.2 does", async () => {
    const m = new Machine({ serialOut: () => {}, ramSize: SMALL_RAM });
    const b = await streamOf(m);
    const hex = b.subarray(0, 23).toString("hex");
    // QEVM, 3, CONFIGURATION, be32 4 "virt", START, section 0, "ram", instance 0 ...
    expect(hex).toBe("5145564d" + "00000003" + "07" + "00000004" + Buffer.from("virt").toString("hex") + "01" + "00000000" + "03");
    const ramStart = b.indexOf(Buffer.from("riscv_virt_board.ram"));
    // be64 total | MEM_SIZE before the block's name.
    expect(b.readBigUInt64BE(ramStart - 9)).toBe(BigInt(SMALL_RAM) | 4n);
  });

  it("pads the vmdesc so its length never holds a 0x7b byte", () => {
    for (let extra = 0; extra < 600; extra++) {
      const json = vmdescJson([{ name: "x".repeat(extra), instance_id: 0, vmsd_name: "x", version: 1, fields: [] }]);
      const n = json.length;
      expect([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]).not.toContain(0x7b);
      expect(() => JSON.parse(json.toString())).not.toThrow();
    }
  });
});

describe("QEMU's analyze-migration.py reads a minivm stream", () => {
  const script = qemuSourceFile("scripts/analyze-migration.py");
  it.skipIf(script === null)("-d desc, -d state and -x (RAM file equal to the guest's RAM)", async () => {
    const m = new Machine({ serialOut: () => {}, kernel: kernel("sv32"), ramSize: SMALL_RAM });
    m.runSlice(30_000);
    // A page of 0xff and a page with a pattern, beside many zero pages.
    m.ram.dmaWrite(0x80300000, new Uint8Array(4096).fill(0xff));
    m.ram.dmaWrite(0x80301000, Uint8Array.from({ length: 4096 }, (_, i) => i * 7));
    const bytes = await streamOf(m);
    const dir = mkdtempSync(join(tmpdir(), "minivm-analyze-"));
    try {
      const file = join(dir, "vm.mig");
      writeFileSync(file, bytes);
      const py = (args: string[]) => execFileSync("python3", [script!, "-f", file, ...args], { cwd: dir, encoding: "utf8", maxBuffer: 256 << 20 });
      const desc = JSON.parse(py(["-d", "desc"])) as { page_size: number; devices: { name: string }[] };
      expect(desc.page_size).toBe(4096);
      expect(desc.devices.map((d) => d.name)).toEqual(m.migrationEntries().map((e) => e.idstr));
      const state = JSON.parse(py(["-d", "state"])) as Record<string, Record<string, unknown>>;
      expect(state["ram (0)"]["section sizes"]).toEqual({ "riscv_virt_board.ram": "0x" + SMALL_RAM.toString(16).padStart(16, "0") });
      const cpu = state["cpu (2)"];
      expect(cpu).toBeDefined();
      expect(JSON.stringify(cpu)).toContain(`0x${(m.cpu.pc >>> 0).toString(16).padStart(8, "0")}`);
      py(["-x"]);
      const ram = readFileSync(join(dir, "riscv_virt_board.ram"));
      expect(ram.length).toBe(SMALL_RAM);
      expect(ram.equals(Buffer.from(m.ram.bytes))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
