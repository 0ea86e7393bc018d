// The shared regions (DESIGN.md §2, issue 8 §3): every SharedArrayBuffer the threads share,
// in one plain object that the main thread allocates from the configuration and hands whole
// to each worker in its workerData (structured clone shares the buffers, it does not copy
// them). Each thread makes its own views with the helpers below. Everything else belongs to
// one thread and is reached through messages.
//
//   region    size                         layout (see the named file)
//   control   (16 + 16 * harts) * 4        global control words, then one block per hart:
//                                          exit request, kick word, LR/SC reservation (shared.ts)
//   bql       BQL_BYTES                    the big lock and its statistics (bql.ts)
//   ram       ramSize                      guest RAM (memory/ram.ts), at the board's DRAM base;
//                                          any thread may read and write it
//   dirty     1 bit per 4 KiB page         set by every RAM write (memory/write-tracking.ts);
//                                          bit p of Int32 word p >>> 5 is page p
//   present   1 bit per 4 KiB page         postcopy: page has arrived. All ones (every page
//                                          present) until migration uses it; nothing reads it yet
//   serialOut 64 + serialRingBytes        guest console output, core -> main (byte-ring.ts)
//   serialIn  64 + serialRingBytes        console input, main -> core (byte-ring.ts)
//   trace     64 + count * bytes           trace rings, reserved for the teaching view. Header
//                                          (Int32 words): 0 TRACE_MAGIC, 1 layout version,
//                                          2 ring count, 3 bytes per ring, 4 offset of ring 0;
//                                          ring i is at offset + i * bytes. Count 0 today.

import { Bql, createBqlBuffer } from "./bql.js";
import { ByteRing } from "./byte-ring.js";
import { createControlBuffer, hartBase, HART } from "./shared.js";
import { Ram, checkRamSize } from "../memory/ram.js";
import { pageBitmapBytes } from "../memory/write-tracking.js";

export const REGIONS_LAYOUT_VERSION = 1;
/** "TRCE" read as a little-endian Int32: marks a trace region header. */
export const TRACE_MAGIC = 0x45435254;
const TRACE_HEADER_BYTES = 64;
export const DEFAULT_SERIAL_RING_BYTES = 64 * 1024;

export interface RegionsConfig {
  ramSize: number;
  /** Hart blocks to lay out; only hart 0 runs today. */
  harts?: number;
  /** Data bytes of each serial ring (a power of two). */
  serialRingBytes?: number;
  /** Trace rings to reserve (the teaching-view issue sets these). */
  traceRings?: { count: number; bytes: number };
}

/** Plain data only (buffers and numbers), so it crosses to a worker in workerData. */
export interface SharedRegions {
  readonly layoutVersion: number;
  readonly ramSize: number;
  readonly harts: number;
  readonly control: SharedArrayBuffer;
  readonly bql: SharedArrayBuffer;
  readonly ram: SharedArrayBuffer;
  readonly dirty: SharedArrayBuffer;
  readonly present: SharedArrayBuffer;
  readonly serialOut: SharedArrayBuffer;
  readonly serialIn: SharedArrayBuffer;
  readonly trace: SharedArrayBuffer;
}

export function createSharedRegions(config: RegionsConfig): SharedRegions {
  checkRamSize(config.ramSize);
  const harts = config.harts ?? 1;
  const ringBytes = config.serialRingBytes ?? DEFAULT_SERIAL_RING_BYTES;
  const trace = config.traceRings ?? { count: 0, bytes: 0 };
  if (!Number.isInteger(trace.count) || trace.count < 0 || !Number.isInteger(trace.bytes) || trace.bytes < 0 || trace.bytes % 8 !== 0) {
    throw new Error(`trace rings ${trace.count} x ${trace.bytes} bytes: need whole counts and sizes in multiples of 8`);
  }
  const traceBuffer = new SharedArrayBuffer(TRACE_HEADER_BYTES + trace.count * trace.bytes);
  const header = new Int32Array(traceBuffer, 0, TRACE_HEADER_BYTES / 4);
  header.set([TRACE_MAGIC, REGIONS_LAYOUT_VERSION, trace.count, trace.bytes, TRACE_HEADER_BYTES]);

  const bitmap = pageBitmapBytes(config.ramSize);
  const present = new SharedArrayBuffer(bitmap);
  fillPresent(new Int32Array(present), Math.ceil(config.ramSize / 4096));

  return {
    layoutVersion: REGIONS_LAYOUT_VERSION,
    ramSize: config.ramSize,
    harts,
    control: createControlBuffer(harts),
    bql: createBqlBuffer(),
    ram: new SharedArrayBuffer(config.ramSize),
    dirty: new SharedArrayBuffer(bitmap),
    present,
    serialOut: ByteRing.create(ringBytes),
    serialIn: ByteRing.create(ringBytes),
    trace: traceBuffer,
  };
}

/** Every page present: exactly the bits of existing pages, none past the end. */
function fillPresent(words: Int32Array, pages: number): void {
  words.fill(-1, 0, pages >>> 5);
  if ((pages & 31) !== 0) words[pages >>> 5] = (1 << (pages & 31)) - 1;
}

/** Refuse a regions object from another layout version (a stale worker, say). */
export function checkRegions(r: SharedRegions): SharedRegions {
  if (r.layoutVersion !== REGIONS_LAYOUT_VERSION) {
    throw new Error(`shared regions layout ${r.layoutVersion}, this build expects ${REGIONS_LAYOUT_VERSION}`);
  }
  return r;
}

export function controlView(r: SharedRegions): Int32Array {
  return new Int32Array(r.control);
}

/** One word of hart `h`'s block, as a length-1 array (what the CPU and the board hold). */
export function hartWord(r: SharedRegions, h: number, word: (typeof HART)[keyof typeof HART]): Int32Array {
  if (!Number.isInteger(h) || h < 0 || h >= r.harts) throw new Error(`hart ${h} does not exist (harts: ${r.harts})`);
  return new Int32Array(r.control, (hartBase(h) + word) * 4, 1);
}

/** This thread's handle on the BQL, under `threadName`. */
export function bqlHandle(r: SharedRegions, threadName: string): Bql {
  return new Bql(r.bql, threadName);
}

/** Guest RAM over the shared buffers, with this thread's write tracker. */
/** Guest RAM over the shared buffers, at guest-physical `base` (the board's DRAM base). */
export function ramView(r: SharedRegions, base: number): Ram {
  return new Ram(base, r.ramSize, r.ram, r.dirty);
}

export function presentBitmap(r: SharedRegions): Int32Array {
  return new Int32Array(r.present);
}

export function serialOutRing(r: SharedRegions): ByteRing {
  return new ByteRing(r.serialOut);
}

export function serialInRing(r: SharedRegions): ByteRing {
  return new ByteRing(r.serialIn);
}
