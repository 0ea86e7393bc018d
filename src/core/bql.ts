// The big QEMU lock (BQL): one mutex shared by every thread that touches the machine.
// A three-state futex mutex (0 free, 1 held, 2 held with waiters; Drepper, "Futexes Are
// Tricky") over an Int32Array in a SharedArrayBuffer, instrumented so that `x-query-bql`
// and the dashboard can show who holds it, how often it was contended and for how long.

import { TRACE } from "../trace/events.js";
import { trace } from "../trace/tracer.js";

const STATE = 0; // Int32 word: 0 free, 1 held, 2 held + waiters
const HOLDER = 1; // Int32 word: thread slot + 1 of the holder, 0 when free
const NAMES_USED = 2; // Int32 word: registered thread slots
const INT_WORDS = 4;

export const BQL_MAX_THREADS = 16;
const NAME_BYTES = 32;

// Float64 region: [0] hold start (ms, absolute), then per thread slot:
// acquisitions, contended, total hold ns, longest hold ns, total wait ns.
const F_HOLD_START = 0;
const F_THREADS = 1;
const F_PER_THREAD = 5;

const INT_BYTES = INT_WORDS * 4;
const NAMES_OFFSET = INT_BYTES;
const FLOAT_OFFSET = NAMES_OFFSET + BQL_MAX_THREADS * NAME_BYTES;
const FLOAT_WORDS = F_THREADS + BQL_MAX_THREADS * F_PER_THREAD;

export const BQL_BYTES = FLOAT_OFFSET + FLOAT_WORDS * 8;

export interface BqlThreadStats {
  thread: string;
  acquisitions: number;
  contended: number;
  totalHoldNs: number;
  longestHoldNs: number;
  totalWaitNs: number;
}

export interface BqlSnapshot {
  holder: string | null;
  heldNs: number | null;
  acquisitions: number;
  contended: number;
  threads: BqlThreadStats[];
}

/** Absolute wall time in ms with sub-µs resolution, comparable across threads. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function createBqlBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(BQL_BYTES);
}

/**
 * One thread's handle on the shared lock. Each thread that takes the BQL makes its own
 * handle with a name ("vcpu0", "main-loop", "migration"); the name shows in statistics.
 */
export class Bql {
  private readonly words: Int32Array;
  private readonly stats: Float64Array;
  private readonly names: Uint8Array;
  private slotIndex = -1;

  /**
   * The thread's name is registered on its first acquisition, so an observer that only
   * reads statistics (the monitor thread, say) never appears in them.
   */
  constructor(buffer: SharedArrayBuffer, private readonly threadName: string) {
    if (buffer.byteLength < BQL_BYTES) throw new Error(`BQL buffer too small: ${buffer.byteLength} < ${BQL_BYTES}`);
    this.words = new Int32Array(buffer, 0, INT_WORDS);
    this.names = new Uint8Array(buffer, NAMES_OFFSET, BQL_MAX_THREADS * NAME_BYTES);
    this.stats = new Float64Array(buffer, FLOAT_OFFSET, FLOAT_WORDS);
  }

  private get slot(): number {
    if (this.slotIndex < 0) this.slotIndex = this.register(this.threadName);
    return this.slotIndex;
  }

  /** The slot of an existing registration with this name, or a new one. */
  private register(name: string): number {
    const encoded = new TextEncoder().encode(name).subarray(0, NAME_BYTES - 1);
    for (;;) {
      const used = Atomics.load(this.words, NAMES_USED);
      for (let i = 0; i < used; i++) if (this.nameAt(i) === name) return i;
      if (used >= BQL_MAX_THREADS) throw new Error(`BQL: more than ${BQL_MAX_THREADS} named threads`);
      if (Atomics.compareExchange(this.words, NAMES_USED, used, used + 1) === used) {
        this.names.set(encoded, used * NAME_BYTES);
        return used;
      }
    }
  }

  private nameAt(slot: number): string {
    const bytes = this.names.subarray(slot * NAME_BYTES, (slot + 1) * NAME_BYTES);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(bytes.subarray(0, end < 0 ? NAME_BYTES : end));
  }

  /** True when this handle's thread holds the lock. */
  held(): boolean {
    return this.slotIndex >= 0 && Atomics.load(this.words, HOLDER) === this.slotIndex + 1;
  }

  lock(): void {
    const w = this.words;
    let c = Atomics.compareExchange(w, STATE, 0, 1);
    const base = F_THREADS + this.slot * F_PER_THREAD;
    let waitNs = 0;
    if (c !== 0) {
      if (Atomics.load(w, HOLDER) === this.slot + 1) {
        throw new Error("BQL: recursive lock by the thread that holds it");
      }
      const waitStart = nowMs();
      if (c !== 2) c = Atomics.exchange(w, STATE, 2);
      while (c !== 0) {
        Atomics.wait(w, STATE, 2);
        c = Atomics.exchange(w, STATE, 2);
      }
      this.stats[base + 1]++;
      waitNs = (nowMs() - waitStart) * 1e6;
      this.stats[base + 4] += waitNs;
    }
    Atomics.store(w, HOLDER, this.slot + 1);
    this.stats[base]++;
    this.stats[F_HOLD_START] = nowMs();
    trace(TRACE.bql_acquired, this.slot, waitNs);
  }

  /** Take the lock only if it is free; never waits. */
  tryLock(): boolean {
    if (Atomics.compareExchange(this.words, STATE, 0, 1) !== 0) return false;
    Atomics.store(this.words, HOLDER, this.slot + 1);
    this.stats[F_THREADS + this.slot * F_PER_THREAD]++;
    this.stats[F_HOLD_START] = nowMs();
    trace(TRACE.bql_acquired, this.slot, 0);
    return true;
  }

  unlock(): void {
    const w = this.words;
    if (Atomics.load(w, HOLDER) !== this.slot + 1) throw new Error("BQL: unlock by a thread that does not hold it");
    const base = F_THREADS + this.slot * F_PER_THREAD;
    const held = (nowMs() - this.stats[F_HOLD_START]) * 1e6;
    this.stats[base + 2] += held;
    if (held > this.stats[base + 3]) this.stats[base + 3] = held;
    trace(TRACE.bql_released, this.slot, held);
    Atomics.store(w, HOLDER, 0);
    if (Atomics.sub(w, STATE, 1) !== 1) {
      Atomics.store(w, STATE, 0);
      Atomics.notify(w, STATE, 1);
    }
  }

  /** Run `fn` with the lock held. */
  with<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /** A lock-free, possibly slightly torn, view of the statistics (any thread, lock or not). */
  snapshot(): BqlSnapshot {
    const holderSlot = Atomics.load(this.words, HOLDER) - 1;
    const used = Atomics.load(this.words, NAMES_USED);
    const threads: BqlThreadStats[] = [];
    let acquisitions = 0;
    let contended = 0;
    for (let i = 0; i < used; i++) {
      const b = F_THREADS + i * F_PER_THREAD;
      const t: BqlThreadStats = {
        thread: this.nameAt(i),
        acquisitions: this.stats[b],
        contended: this.stats[b + 1],
        totalHoldNs: Math.round(this.stats[b + 2]),
        longestHoldNs: Math.round(this.stats[b + 3]),
        totalWaitNs: Math.round(this.stats[b + 4]),
      };
      acquisitions += t.acquisitions;
      contended += t.contended;
      threads.push(t);
    }
    return {
      holder: holderSlot >= 0 ? this.nameAt(holderSlot) : null,
      heldNs: holderSlot >= 0 ? Math.max(0, Math.round((nowMs() - this.stats[F_HOLD_START]) * 1e6)) : null,
      acquisitions,
      contended,
      threads,
    };
  }
}
