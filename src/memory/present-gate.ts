// The destination's side of postcopy's page faults (QEMU's userfaultfd registration in
// postcopy-ram.c). During postcopy the destination runs the guest before all of its RAM has
// arrived; the shared present bitmap (src/core/regions.ts) says which pages have. Every path
// that reaches guest RAM without a TLB hit (the interpreter's slow paths, the page-table
// walker, device DMA) asks the gate first. A missing page is requested from the source and
// the calling thread waits on the bitmap word with Atomics.wait until the receiver thread
// places the page and notifies: a vCPU waits holding the BQL, exactly as a vCPU thread that
// touches a missing page sleeps inside userfaultfd in QEMU. Pages only ever go from missing
// to present while the guest runs (discards happen before it starts), so a TLB entry filled
// after the check stays good, and the fast paths need no check of their own.

import { PAGE_SHIFT } from "./write-tracking.js";

export interface PresentGateHooks {
  /** A page was found missing: ask for it (the receiver sends the request to the source). */
  request(page: number): void;
  /** The thread is about to wait / has stopped waiting for `page` (trace points). */
  blocked?(page: number): void;
  woken?(page: number, waitedNs: number): void;
}

export class PresentGate {
  /**
   * True between POSTCOPY_LISTEN and the end of the incoming migration. False everywhere
   * else, which is every precopy and every source: then no access ever looks at the bitmap.
   */
  active = false;
  /** Faults taken (times a thread had to wait). */
  faults = 0;

  /**
   * `waiting[waitingIndex]` holds the bitmap word a thread waits on, plus one (0: none), so the
   * receiver wakes only that word's waiter instead of calling Atomics.notify for every page.
   */
  constructor(
    readonly present: Int32Array,
    private hooks: PresentGateHooks | null = null,
    private readonly waiting: Int32Array | null = null,
    private readonly waitingIndex = 0,
  ) {}

  setHooks(hooks: PresentGateHooks | null): void {
    this.hooks = hooks;
  }

  /** True when `page` has arrived. */
  has(page: number): boolean {
    return (Atomics.load(this.present, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /** Wait until every page of RAM offsets [off, off+len) is present. */
  ensureRange(off: number, len: number): void {
    if (len <= 0) return;
    const last = (off + len - 1) >>> PAGE_SHIFT;
    for (let p = off >>> PAGE_SHIFT; p <= last; p++) this.ensurePage(p);
  }

  /** Wait until RAM offset `off`'s page is present. */
  ensure(off: number): void {
    this.ensurePage(off >>> PAGE_SHIFT);
  }

  ensurePage(page: number): void {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    let v = Atomics.load(this.present, w);
    if ((v & bit) !== 0) return;
    this.faults++;
    const t0 = performance.now();
    this.hooks?.request(page);
    this.hooks?.blocked?.(page);
    // Say which word we wait on before waiting: a receiver that places a page of it after
    // this store notifies; one that placed it before changed the word, and wait() returns at
    // once because the word no longer holds `v`.
    if (this.waiting !== null) Atomics.store(this.waiting, this.waitingIndex, w + 1);
    while ((v & bit) === 0) {
      // Woken by the receiver's notify on this word (another page of the same word may wake
      // it first: look again).
      Atomics.wait(this.present, w, v);
      v = Atomics.load(this.present, w);
    }
    if (this.waiting !== null) Atomics.store(this.waiting, this.waitingIndex, 0);
    this.hooks?.woken?.(page, (performance.now() - t0) * 1e6);
  }
}

/** Mark `page` present and wake whoever waits on its word (the receiver thread's half). */
export function placePresent(present: Int32Array, page: number): void {
  const w = page >>> 5;
  Atomics.or(present, w, 1 << (page & 31));
  Atomics.notify(present, w);
}

/** Clear `page`'s present bit (a discard, or a fresh destination). */
export function clearPresent(present: Int32Array, page: number): void {
  Atomics.and(present, page >>> 5, ~(1 << (page & 31)));
}

/** Every page of `pages` present, none past the end (the bitmap's state outside postcopy). */
export function markAllPresent(present: Int32Array, pages: number): void {
  const full = pages >>> 5;
  for (let w = 0; w < present.length; w++) {
    Atomics.store(present, w, w < full ? -1 : w === full && pages % 32 !== 0 ? (1 << pages % 32) - 1 : 0);
  }
}
