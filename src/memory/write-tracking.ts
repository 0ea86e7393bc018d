// Write tracking for guest RAM (DESIGN.md §2, issue 8 §3): the one place that records that
// a RAM page changed. Every writer goes through it: the interpreter's store fast path
// (markPageDirty), its slow paths and the MMU's A/D updates, and device DMA (WriteTracker).
// Two consumers listen: migration reads the shared dirty bitmap (QEMU's
// cpu_physical_memory_set_dirty_range / the migration bitmap), and a code cache can watch
// chosen pages (TinyEMU's flush_tlb_write_range, v86's jit_dirty_page).
//
// This module is a leaf: src/cpu, devices and src/core all import it and it imports none of
// them, so the CPU can use it without an import cycle between folders.

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/** Bytes of a one-bit-per-4-KiB-page bitmap over `ramSize` bytes, in whole Int32 words. */
export function pageBitmapBytes(ramSize: number): number {
  const pages = Math.ceil(ramSize / PAGE_SIZE);
  return Math.ceil(pages / 32) * 4;
}

/**
 * Mark RAM page `page` dirty: bit (page & 31) of word (page >>> 5). The caller has already
 * stored: store first, then mark, so a migration thread that clears the bit and then copies
 * the page cannot miss the store. The plain test first keeps the common case (bit already
 * set) free of a locked instruction; small enough for V8 to inline into the interpreter.
 */
export function markPageDirty(dirty: Int32Array, page: number): void {
  const w = page >>> 5;
  const bit = 1 << (page & 31);
  if ((dirty[w] & bit) === 0) Atomics.or(dirty, w, bit);
}

/** Mark every page of [off, off+len) (RAM offsets) dirty. */
export function markDirtyRange(dirty: Int32Array, off: number, len: number): void {
  if (len <= 0) return;
  const last = (off + len - 1) >>> PAGE_SHIFT;
  for (let p = off >>> PAGE_SHIFT; p <= last; p++) markPageDirty(dirty, p);
}

/** Told about a write to a watched page: the page, and the written part of it (RAM offsets). */
export type WriteListener = (page: number, off: number, len: number) => void;

/**
 * The dirty bitmap (shared by every thread) plus this thread's watched pages: a bitmap of
 * pages whose writes a listener (a future code cache) wants to hear about. The interpreter
 * keeps watched pages out of its write TLB (it subscribes with onWatch), so its fast path
 * never needs to look at the watched bitmap; every slower writer calls written().
 */
export class WriteTracker {
  readonly dirty: Int32Array;
  /** Bit p set = page p is watched. Local to the thread that owns this tracker. */
  readonly watched: Int32Array;
  readonly pages: number;
  private watchedCount = 0;
  private listener: WriteListener | null = null;
  private readonly watchSubscribers: Array<(page: number) => void> = [];

  constructor(dirty: Int32Array, ramSize: number) {
    this.pages = Math.ceil(ramSize / PAGE_SIZE);
    if (dirty.length * 32 < this.pages) throw new Error(`dirty bitmap covers ${dirty.length * 32} pages, RAM has ${this.pages}`);
    this.dirty = dirty;
    this.watched = new Int32Array(pageBitmapBytes(ramSize) / 4);
  }

  /** [off, off+len) of RAM was written: mark it dirty and tell the listener about watched pages. */
  written(off: number, len: number): void {
    markDirtyRange(this.dirty, off, len);
    if (this.watchedCount !== 0 && len > 0) this.tellListener(off, len);
  }

  private tellListener(off: number, len: number): void {
    const end = off + len;
    const last = (end - 1) >>> PAGE_SHIFT;
    for (let p = off >>> PAGE_SHIFT; p <= last; p++) {
      if (!this.isWatched(p) || this.listener === null) continue;
      const start = Math.max(off, p << PAGE_SHIFT);
      const stop = Math.min(end, (p + 1) << PAGE_SHIFT);
      this.listener(p, start, stop - start);
    }
  }

  /** Who hears about writes to watched pages (one listener: the code cache); null for nobody. */
  setListener(listener: WriteListener | null): void {
    this.listener = listener;
  }

  /** Called with a page that has just become watched (the CPU drops it from its write TLB). */
  onWatch(subscriber: (page: number) => void): void {
    this.watchSubscribers.push(subscriber);
  }

  watch(page: number): void {
    this.checkPage(page);
    if (this.isWatched(page)) return;
    this.watched[page >>> 5] |= 1 << (page & 31);
    this.watchedCount++;
    for (const s of this.watchSubscribers) s(page);
  }

  unwatch(page: number): void {
    this.checkPage(page);
    if (!this.isWatched(page)) return;
    this.watched[page >>> 5] &= ~(1 << (page & 31));
    this.watchedCount--;
  }

  isWatched(page: number): boolean {
    return (this.watched[page >>> 5] & (1 << (page & 31))) !== 0;
  }

  private checkPage(page: number): void {
    if (!Number.isInteger(page) || page < 0 || page >= this.pages) {
      throw new Error(`page ${page} is outside RAM (0..${this.pages - 1})`);
    }
  }
}
