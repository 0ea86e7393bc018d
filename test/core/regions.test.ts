// The shared regions: one object the main thread allocates, whose buffers every thread sees.
// The cross-thread test runs a guest here and a second thread that reads and writes its RAM
// through the regions object alone.

import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { createSharedRegions, hartWord, presentBitmap, TRACE_MAGIC } from "../../src/core/regions.js";
import { CONTROL, HART, kickCore } from "../../src/core/shared.js";
import { RAM_BASE } from "../../src/core/board.js";
import { writeElf } from "../cpu/elf-writer.js";
import { enc, li, sw } from "../cpu/rv-asm.js";

// Worker threads cannot load TypeScript: the other thread uses the built module (npm test
// builds before it runs vitest).
const BUILT_REGIONS = pathToFileURL(join(import.meta.dirname, "../../dist/src/core/regions.js")).href;

function program(words: number[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const dv = new DataView(bytes.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return writeElf([{ addr: RAM_BASE, bytes }], RAM_BASE);
}

const lw = (rd: number, rs1: number, imm: number) => enc.i(0x03, 2, rd, rs1, imm);
const beq = (rs1: number, rs2: number, imm: number) => enc.b(0, rs1, rs2, imm);

describe("shared regions", () => {
  it("lays out control words with one block per hart, kicked together", () => {
    const r = createSharedRegions({ ramSize: 1 << 20, harts: 3 });
    const control = new Int32Array(r.control);
    expect(control[CONTROL.HARTS]).toBe(3);
    for (let h = 0; h < 3; h++) {
      expect(hartWord(r, h, HART.RESERVATION)[0]).toBe(-1);
      expect(hartWord(r, h, HART.EXIT_REQUEST)[0]).toBe(0);
    }
    expect(() => hartWord(r, 3, HART.KICK)).toThrow(/hart 3 does not exist/);
    kickCore(control);
    for (let h = 0; h < 3; h++) {
      expect(hartWord(r, h, HART.EXIT_REQUEST)[0]).toBe(1);
      expect(hartWord(r, h, HART.KICK)[0]).toBe(1);
    }
    expect(control[CONTROL.WAKE]).toBe(1);
    // Hart 0's exit request is what the single vCPU loop clears and checks.
    expect(hartWord(r, 0, HART.EXIT_REQUEST).byteOffset).toBe(CONTROL.EXIT_REQUEST * 4);
  });

  it("starts with every existing page present and a trace header naming its rings", () => {
    const r = createSharedRegions({ ramSize: 40 * 4096, traceRings: { count: 2, bytes: 4096 } });
    const present = presentBitmap(r);
    expect(present.length).toBe(2);
    expect(present[0]).toBe(-1);
    expect(present[1]).toBe(0xff);
    expect(new Int32Array(r.dirty).every((w) => w === 0)).toBe(true);
    const header = new Int32Array(r.trace, 0, 5);
    expect([...header]).toEqual([TRACE_MAGIC, 1, 2, 4096, 64]);
    expect(r.trace.byteLength).toBe(64 + 2 * 4096);
    expect(() => createSharedRegions({ ramSize: 1000 })).toThrow(/multiple of 4096/);
  });

  it("lets another thread read what the guest stored and write what the guest then reads", async () => {
    const regions = createSharedRegions({ ramSize: 4 << 20 });
    const stored = 0x80100000;
    const mailbox = 0x80100004;
    const copy = 0x80100008;
    // Store 0x1234abcd at `stored`; wait until `mailbox` is nonzero; copy it to `copy`; spin.
    const m = new Machine({
      serialOut: () => {},
      regions,
      kernel: program([
        ...li(5, stored),
        ...li(6, 0x1234abcd),
        sw(5, 6, 0),
        lw(7, 5, 4),
        beq(7, 0, -4),
        sw(5, 7, 8),
        enc.j(0, 0),
      ]),
    });
    m.runSlice(1000);
    expect(m.ram.load32(copy)).toBe(0);
    new Int32Array(regions.dirty).fill(0);

    const code = `
      const { workerData, parentPort } = require("node:worker_threads");
      import(${JSON.stringify(BUILT_REGIONS)}).then(({ ramView }) => {
        const ram = ramView(workerData, ${RAM_BASE});
        const seen = ram.load32(${stored});
        ram.store32(${mailbox}, 0xfeed0001);
        parentPort.postMessage(seen);
      });`;
    const seen = await new Promise<number>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: regions });
      w.once("message", (v: number) => {
        resolve(v);
        void w.terminate();
      });
      w.once("error", reject);
    });
    expect(seen).toBe(0x1234abcd);
    // The other thread's write went through RAM's write tracking into the shared bitmap.
    const page = (mailbox - RAM_BASE) >>> 12;
    expect((Atomics.load(new Int32Array(regions.dirty), page >>> 5) >>> (page & 31)) & 1).toBe(1);
    m.runSlice(1000);
    expect(m.ram.load32(copy)).toBe(0xfeed0001);
  });
});
