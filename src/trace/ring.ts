// Lock-free trace rings in the shared regions' trace area (src/core/regions.ts): one ring per
// producing thread, written by that thread only, read by anyone without stopping it.
//
// Region header (Int32 words, set by regions.ts): 0 magic, 1 layout version, 2 ring count,
// 3 bytes per ring, 4 offset of ring 0; this module adds words 8..11, the enabled-event mask
// (bit e of word 8 + e/32), which every emitter checks first, so a disabled trace point costs
// one load and a branch.
//
// A ring: a 16-byte head (Int32 word 0: records written so far), then RECORD_BYTES records:
//   Int32 [0] event id, [1] sequence (the record's write number, -1 while being written),
//   Float64 [1] time (ms since the epoch, sub-µs), [2..5] four arguments.
// The producer never waits: it overwrites the oldest record. A reader keeps its own tail,
// checks each record's sequence before and after copying it (a seqlock), and counts the
// records the producer overwrote before it got to them as missed.

import { TRACE_EVENTS } from "./events.js";

export const RECORD_BYTES = 48;
const RING_HEAD_BYTES = 16;
const MASK_WORD = 8;
const MASK_WORDS = 4;

/** Bytes of one ring holding `records` records (what regions.ts reserves per ring). */
export function ringBytes(records: number): number {
  return RING_HEAD_BYTES + records * RECORD_BYTES;
}

function header(trace: SharedArrayBuffer): Int32Array {
  return new Int32Array(trace, 0, 16);
}

/** Turn on exactly `events` (ids) in every thread's emitters. */
export function setEnabledEvents(trace: SharedArrayBuffer, events: Iterable<number>): void {
  const h = header(trace);
  const words = new Array<number>(MASK_WORDS).fill(0);
  for (const e of events) words[e >>> 5] |= 1 << (e & 31);
  for (let i = 0; i < MASK_WORDS; i++) Atomics.store(h, MASK_WORD + i, words[i]);
}

/** Absolute time in ms with sub-µs resolution, comparable across threads. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** One thread's emitter. A region without rings (tracing off) gives one that never writes. */
export class TraceWriter {
  private readonly mask: Int32Array;
  private readonly head: Int32Array;
  private readonly ints: Int32Array;
  private readonly floats: Float64Array;
  private readonly capacity: number;

  constructor(trace: SharedArrayBuffer, ring: number) {
    const h = header(trace);
    this.mask = new Int32Array(trace, MASK_WORD * 4, MASK_WORDS);
    const count = h[2];
    const bytes = h[3];
    if (ring >= count || bytes < ringBytes(1)) {
      // No ring for this thread: nothing can be enabled for it.
      this.mask = new Int32Array(MASK_WORDS);
      this.head = new Int32Array(1);
      this.ints = new Int32Array(2);
      this.floats = new Float64Array(6);
      this.capacity = 1;
      return;
    }
    const base = h[4] + ring * bytes;
    this.capacity = Math.floor((bytes - RING_HEAD_BYTES) / RECORD_BYTES);
    this.head = new Int32Array(trace, base, 1);
    this.ints = new Int32Array(trace, base + RING_HEAD_BYTES, (this.capacity * RECORD_BYTES) / 4);
    this.floats = new Float64Array(trace, base + RING_HEAD_BYTES, (this.capacity * RECORD_BYTES) / 8);
  }

  enabled(event: number): boolean {
    return (this.mask[event >>> 5] & (1 << (event & 31))) !== 0;
  }

  /** Record `event` with up to four numeric arguments: a few stores, no allocation, no lock. */
  emit(event: number, a0 = 0, a1 = 0, a2 = 0, a3 = 0): void {
    if ((this.mask[event >>> 5] & (1 << (event & 31))) === 0) return;
    const n = this.head[0];
    const slot = n % this.capacity;
    const i = slot * (RECORD_BYTES / 4);
    const f = slot * (RECORD_BYTES / 8);
    Atomics.store(this.ints, i + 1, -1);
    this.ints[i] = event;
    this.floats[f + 1] = nowMs();
    this.floats[f + 2] = a0;
    this.floats[f + 3] = a1;
    this.floats[f + 4] = a2;
    this.floats[f + 5] = a3;
    Atomics.store(this.ints, i + 1, n);
    Atomics.store(this.head, 0, (n + 1) | 0);
  }
}

export interface TraceRecord {
  thread: number;
  event: number;
  timeMs: number;
  args: [number, number, number, number];
}

/** Drains every ring of a region, keeping its own position in each. */
export class TraceReader {
  private readonly tails: number[];
  /** Records overwritten before this reader got to them, over all rings. */
  missed = 0;

  constructor(private readonly trace: SharedArrayBuffer) {
    this.tails = new Array<number>(header(trace)[2]).fill(0);
  }

  /** Every record written since the last call, ring by ring, oldest first. */
  drain(): TraceRecord[] {
    const h = header(this.trace);
    const [count, bytes, offset] = [h[2], h[3], h[4]];
    const out: TraceRecord[] = [];
    for (let r = 0; r < count; r++) {
      const base = offset + r * bytes;
      const capacity = Math.floor((bytes - RING_HEAD_BYTES) / RECORD_BYTES);
      const head = Atomics.load(new Int32Array(this.trace, base, 1), 0);
      const ints = new Int32Array(this.trace, base + RING_HEAD_BYTES, (capacity * RECORD_BYTES) / 4);
      const floats = new Float64Array(this.trace, base + RING_HEAD_BYTES, (capacity * RECORD_BYTES) / 8);
      let tail = this.tails[r];
      if (head - tail > capacity) {
        this.missed += head - tail - capacity;
        tail = head - capacity;
      }
      for (let n = tail; n < head; n++) {
        const slot = n % capacity;
        const i = slot * (RECORD_BYTES / 4);
        const f = slot * (RECORD_BYTES / 8);
        const before = Atomics.load(ints, i + 1);
        const rec: TraceRecord = { thread: r, event: ints[i], timeMs: floats[f + 1], args: [floats[f + 2], floats[f + 3], floats[f + 4], floats[f + 5]] };
        // Overwritten while we copied it (or before): the producer lapped us.
        if (before !== n || Atomics.load(ints, i + 1) !== n || rec.event < 0 || rec.event >= TRACE_EVENTS.length) {
          this.missed++;
          continue;
        }
        out.push(rec);
      }
      this.tails[r] = head;
    }
    return out;
  }
}
