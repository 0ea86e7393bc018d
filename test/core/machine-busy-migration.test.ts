// Machine.save()/load() with every device busy at the moment of the save: the UART's FIFO
// character timeout armed, a CLINT timer pending, a virtio-blk request completed after a
// drain with its interrupt claimed but not completed at the PLIC. A second machine loaded
// from that state must go on exactly as the first does. Time is a shared fake clock, so both
// machines see the same instants; addresses come from the board table, as a guest's would
// come from the device tree. The destination's host clock differs from the source's.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { VirtioBlk } from "../../devices/virtio-blk.js";
import { BlockBackend } from "../../src/block/backend.js";
import { IoPool } from "../../src/block/io-pool.js";
import { boardRow, RAM_BASE, virtioSlotRow } from "../../src/core/board.js";
import { Machine } from "../../src/core/machine.js";

const dir = mkdtempSync(join(tmpdir(), "minivm-busy-"));
const pool = new IoPool();
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

// `wfi; j .-4`: a hart that sleeps with every interrupt masked, so only devices move.
const SLEEPER = Uint8Array.from([0x73, 0x00, 0x50, 0x10, 0x6f, 0xf0, 0xdf, 0xff]);

// Guest-side layout of the virtqueue and one request, in RAM.
const DESC = RAM_BASE + 0x10000;
const AVAIL = RAM_BASE + 0x11000;
const USED = RAM_BASE + 0x12000;
const HDR = RAM_BASE + 0x13000;
const STATUS = RAM_BASE + 0x13100;
const DATA = RAM_BASE + 0x14000;
const QSIZE = 8;

const UART = boardRow("uart0");
const PLIC = boardRow("plic");
const CLINT = boardRow("clint");
const VIRTIO = virtioSlotRow(0);
const PLIC_CTX1_CLAIM = PLIC.base + 0x201004;
const MIP_MTIP = 1 << 7;

interface Rig {
  m: Machine;
  vblk: VirtioBlk;
  blk: BlockBackend;
  out: number[];
}

async function build(file: string, clock: { t: number }, inactive = false): Promise<Rig> {
  const blk = await BlockBackend.open({ file, format: "raw", id: "drive0", pool, inactive });
  const vblk = new VirtioBlk(blk, { serial: "busy" });
  const out: number[] = [];
  const m = new Machine({ ramSize: 4 << 20, bios: null, kernel: SLEEPER, now: () => clock.t, serialOut: (b) => out.push(...b), virtio: [vblk] });
  return { m, vblk, blk, out };
}

const w32 = (m: Machine, pa: number, v: number) => m.bus.store(pa, 4, v);
const r32 = (m: Machine, pa: number) => m.bus.load(pa, 4);

/** Bring virtio-blk up with one queue, as a driver does (virtio 1.2 §3.1.1, §4.2.3). */
function virtioInit(m: Machine): void {
  const b = VIRTIO.base;
  w32(m, b + 0x70, 0);
  w32(m, b + 0x70, 1 | 2);
  w32(m, b + 0x24, 1);
  w32(m, b + 0x20, 1); // VIRTIO_F_VERSION_1
  w32(m, b + 0x70, 1 | 2 | 8);
  w32(m, b + 0x30, 0);
  w32(m, b + 0x38, QSIZE);
  w32(m, b + 0x80, DESC);
  w32(m, b + 0x90, AVAIL);
  w32(m, b + 0xa0, USED);
  w32(m, b + 0x44, 1);
  w32(m, b + 0x70, 1 | 2 | 4 | 8);
}

/** Queue one request (header, 512-byte data, status) and notify. */
function virtioRequest(m: Machine, type: number, sector: number, availIdx: number, data?: Uint8Array): void {
  const ram = m.ram;
  ram.store32(HDR, type);
  ram.store32(HDR + 4, 0);
  ram.store32(HDR + 8, sector);
  ram.store32(HDR + 12, 0);
  if (data !== undefined) ram.dmaWrite(DATA, data);
  const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
    ram.store32(DESC + 16 * i, addr);
    ram.store32(DESC + 16 * i + 4, 0);
    ram.store32(DESC + 16 * i + 8, len);
    ram.store16(DESC + 16 * i + 12, flags);
    ram.store16(DESC + 16 * i + 14, next);
  };
  desc(0, HDR, 16, 1, 1);
  desc(1, DATA, 512, 1 | (data === undefined ? 2 : 0), 2);
  desc(2, STATUS, 1, 2, 0);
  ram.store16(AVAIL + 4 + 2 * (availIdx % QSIZE), 0);
  ram.store16(AVAIL + 2, availIdx + 1);
  w32(m, VIRTIO.base + 0x50, 0);
}

/** What a guest could observe, read identically from both machines. */
async function observe(rig: Rig, clock: { t: number }): Promise<Record<string, unknown>> {
  const { m } = rig;
  const seen: Record<string, unknown> = {};
  seen["mip-before"] = m.cpu.mip;
  clock.t += 5_000_000; // 5 ms: past the UART's 4-character timeout and the CLINT deadline
  m.runSlice(16);
  seen["mip-after"] = m.cpu.mip & MIP_MTIP;
  seen["uart-iir"] = m.bus.load(UART.base + 2, 1);
  // The driver goes on where it was: it acknowledges the used-buffer interrupt, completes the
  // claim the save left outstanding (the UART's interrupt is next in line), and reads back
  // the sector the first request wrote.
  seen["isr"] = r32(m, VIRTIO.base + 0x60);
  w32(m, VIRTIO.base + 0x64, 3);
  w32(m, PLIC_CTX1_CLAIM, 1);
  seen["next-claim"] = r32(m, PLIC_CTX1_CLAIM);
  w32(m, PLIC_CTX1_CLAIM, 10);
  seen["uart-rx"] = [m.bus.load(UART.base, 1), m.bus.load(UART.base, 1)];
  virtioRequest(m, 0, 1, 1);
  await rig.vblk.drain();
  seen["used-idx"] = m.ram.load16(USED + 2);
  seen["status"] = m.ram.bytes[STATUS - RAM_BASE];
  seen["data"] = Buffer.from(m.ram.bytes.subarray(DATA - RAM_BASE, DATA - RAM_BASE + 512)).toString("hex");
  seen["plic-claim"] = r32(m, PLIC_CTX1_CLAIM);
  return seen;
}

describe("Machine migration with busy devices", () => {
  it("resumes a machine whose UART, timer, PLIC and virtio-blk are all mid-operation", async () => {
    const file = join(dir, "disk.raw");
    writeFileSync(file, Buffer.alloc(64 * 1024));
    const clock = { t: 1_000_000_000 };
    const a = await build(file, clock);
    expect(a.m.runSlice(100).kind).toBe("idle");

    // PLIC: sources 1 (virtio slot 0) and 10 (UART) at priority 1, enabled for the S context.
    w32(a.m, PLIC.base + 4 * 1, 1);
    w32(a.m, PLIC.base + 4 * 10, 1);
    w32(a.m, PLIC.base + 0x2080, (1 << 1) | (1 << 10));
    w32(a.m, PLIC.base + 0x201000, 0);
    // CLINT: a deadline 100 µs ahead.
    const mtime = r32(a.m, CLINT.base + 0xbff8);
    w32(a.m, CLINT.base + 0x4004, 0);
    w32(a.m, CLINT.base + 0x4000, mtime + 1000);
    // UART: FIFO on with a 4-byte trigger; two bytes arrive, so the character timeout is armed.
    a.m.bus.store(UART.base + 2, 1, 0x41);
    a.m.bus.store(UART.base + 1, 1, 0x01);
    a.m.serialInput(Uint8Array.of(0x68, 0x69));
    // virtio-blk: a write to sector 1, drained, its interrupt claimed but not completed.
    virtioInit(a.m);
    const pattern = Uint8Array.from({ length: 512 }, (_, i) => (i * 7 + 3) & 0xff);
    virtioRequest(a.m, 1, 1, 0, pattern);
    await a.vblk.drain();
    expect(a.m.ram.load16(USED + 2)).toBe(1);
    expect(r32(a.m, PLIC_CTX1_CLAIM)).toBe(1);
    a.m.ram.dmaWrite(DATA, new Uint8Array(512));

    const state = a.m.save();
    // The destination's host clock reads something else entirely, as another process's would:
    // the guest clock travels in the state, so its timers fire at the same guest instants.
    const clockB = { t: clock.t + 7_000_000_000 };
    // A migration destination opens the shared disk inactive (no image locks) while the source holds it.
    const b = await build(file, clockB, true);
    b.m.ram.bytes.set(a.m.ram.bytes);
    b.m.load(state);

    const seenA = await observe(a, clock);
    const seenB = await observe(b, clockB);
    expect(seenB).toEqual(seenA);
    // And what both saw is what a guest expects, so the comparison cannot pass vacuously.
    expect(seenA["mip-after"]).toBe(MIP_MTIP);
    expect(seenA["uart-iir"]).toBe(0xcc); // FIFO enabled, character timeout
    expect(seenA["uart-rx"]).toEqual([0x68, 0x69]);
    expect(seenA["next-claim"]).toBe(10);
    expect(seenA["isr"]).toBe(1);
    expect(seenA["used-idx"]).toBe(2);
    expect(seenA["plic-claim"]).toBe(1);
    expect(seenA["status"]).toBe(0);
    expect(seenA["data"]).toBe(Buffer.from(pattern).toString("hex"));
    await a.blk.close();
    await b.blk.close();
  });
});
