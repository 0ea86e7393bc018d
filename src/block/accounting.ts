// Block I/O accounting as QEMU 7.2's block/accounting.c and util/timed-average.c: per
// operation type, bytes/operations/total time/failed/invalid/merged, the time of the last
// access, optional timed-average intervals, and latency histograms with user-set boundaries.
// Recording one request is a handful of typed-array updates and one clock read.

import { TRACE } from "../trace/events.js";
import { trace } from "../trace/tracer.js";

/** BlockAcctType, in QEMU 7.2's order (zone append arrived in 8.1). */
export const enum BlockAcctType {
  NONE = 0,
  READ = 1,
  WRITE = 2,
  FLUSH = 3,
  UNMAP = 4,
}
export const BLOCK_MAX_IOTYPE = 5;

/** Monotonic nanoseconds (QEMU_CLOCK_REALTIME in QEMU; monotonic here, so latencies never go negative). */
export function nowNs(): number {
  return performance.now() * 1e6;
}

/**
 * A latency histogram: boundaries b0 < b1 < ... < bn give bins [0,b0), [b0,b1), ..., [bn,+inf)
 * (block_latency_histogram_account). An empty boundary list is one bin, as QEMU accepts it.
 */
export class LatencyHistogram {
  readonly boundaries: Float64Array;
  readonly bins: Float64Array;

  constructor(boundaries: readonly number[]) {
    this.boundaries = Float64Array.from(boundaries);
    this.bins = new Float64Array(boundaries.length + 1);
  }

  /** QEMU's check: every boundary strictly greater than the previous one, the first > 0. */
  static valid(boundaries: readonly number[]): boolean {
    let prev = 0;
    for (const b of boundaries) {
      if (!Number.isSafeInteger(b) || b <= prev) return false;
      prev = b;
    }
    return true;
  }

  account(latencyNs: number): void {
    const b = this.boundaries;
    const n = b.length;
    if (n === 0 || latencyNs < b[0]) {
      this.bins[0]++;
      return;
    }
    if (latencyNs >= b[n - 1]) {
      this.bins[n]++;
      return;
    }
    // Find the last boundary <= latency: the bin to its right.
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (latencyNs < b[mid]) hi = mid;
      else lo = mid;
    }
    this.bins[lo + 1]++;
  }
}

interface Window {
  min: number;
  max: number;
  sum: number;
  count: number;
  expiration: number;
}

/**
 * util/timed-average.c: two windows offset by half a period, the period stretched by 4/3, so
 * the oldest window always covers between 2/3 and 4/3 of the requested interval.
 */
export class TimedAverage {
  readonly period: number;
  private current = 0;
  private readonly windows: [Window, Window];

  constructor(periodNs: number, now = nowNs()) {
    this.period = Math.floor((periodNs * 4) / 3);
    const fresh = (expiration: number): Window => ({ min: Infinity, max: 0, sum: 0, count: 0, expiration });
    this.windows = [fresh(now + Math.floor(this.period / 2)), fresh(now + this.period)];
  }

  private check(now: number): number {
    for (const w of this.windows) {
      if (w.expiration <= now) {
        w.min = Infinity;
        w.max = 0;
        w.sum = 0;
        w.count = 0;
        const elapsed = (now - w.expiration) % this.period;
        w.expiration = now + (this.period - elapsed);
      }
    }
    this.current = this.windows[0].expiration < this.windows[1].expiration ? 0 : 1;
    return this.period - (this.windows[this.current].expiration - now);
  }

  account(value: number, now = nowNs()): void {
    this.check(now);
    for (const w of this.windows) {
      w.sum += value;
      w.count++;
      if (value < w.min) w.min = value;
      if (value > w.max) w.max = value;
    }
  }

  min(now = nowNs()): number {
    this.check(now);
    const w = this.windows[this.current];
    return w.min === Infinity ? 0 : w.min;
  }
  max(now = nowNs()): number {
    this.check(now);
    return this.windows[this.current].max;
  }
  avg(now = nowNs()): number {
    this.check(now);
    const w = this.windows[this.current];
    return w.count > 0 ? Math.floor(w.sum / w.count) : 0;
  }
  /** Sum and the time the oldest window has been running (for the average queue depth). */
  sum(now = nowNs()): { sum: number; elapsed: number } {
    const elapsed = this.check(now);
    return { sum: this.windows[this.current].sum, elapsed };
  }
}

export interface TimedStats {
  intervalLength: number;
  latency: TimedAverage[];
}

/** BlockAcctStats. */
let nextTraceDrive = 0;

export class BlockAcctStats {
  readonly nrBytes = new Float64Array(BLOCK_MAX_IOTYPE);
  readonly nrOps = new Float64Array(BLOCK_MAX_IOTYPE);
  readonly invalidOps = new Float64Array(BLOCK_MAX_IOTYPE);
  readonly failedOps = new Float64Array(BLOCK_MAX_IOTYPE);
  readonly totalTimeNs = new Float64Array(BLOCK_MAX_IOTYPE);
  readonly merged = new Float64Array(BLOCK_MAX_IOTYPE);
  readonly histograms: Array<LatencyHistogram | null> = [null, null, null, null, null];
  readonly intervals: TimedStats[] = [];
  lastAccessTimeNs = 0;
  accountInvalid = true;
  accountFailed = true;
  /** Which drive this is in trace records (its creation order in the process). */
  readonly traceDrive = nextTraceDrive++;

  /** block_acct_add_interval: `seconds`-long timed statistics. */
  addInterval(seconds: number): void {
    const latency: TimedAverage[] = [];
    for (let i = 0; i < BLOCK_MAX_IOTYPE; i++) latency.push(new TimedAverage(seconds * 1e9));
    this.intervals.push({ intervalLength: seconds, latency });
  }

  /** block_acct_done: a request of `bytes` that started at `startNs` succeeded. */
  done(type: BlockAcctType, bytes: number, startNs: number): void {
    this.doneAt(type, bytes, startNs, nowNs());
  }

  /** `done` with the completion time supplied (the clock read is most of the cost). */
  doneAt(type: BlockAcctType, bytes: number, startNs: number, now: number): void {
    const lat = now - startNs;
    this.nrBytes[type] += bytes;
    this.nrOps[type]++;
    const h = this.histograms[type];
    if (h !== null) h.account(lat);
    this.totalTimeNs[type] += lat;
    this.lastAccessTimeNs = now;
    if (this.intervals.length !== 0) this.accountIntervals(type, lat, now);
    trace(TRACE.block_request_completed, this.traceDrive, type, bytes, lat);
  }

  /** block_acct_failed: counted as failed; time and last access only if account_failed. */
  failed(type: BlockAcctType, startNs: number): void {
    const now = nowNs();
    const lat = now - startNs;
    this.failedOps[type]++;
    const h = this.histograms[type];
    if (h !== null) h.account(lat);
    if (this.accountFailed) {
      this.totalTimeNs[type] += lat;
      this.lastAccessTimeNs = now;
      if (this.intervals.length !== 0) this.accountIntervals(type, lat, now);
    }
  }

  /** block_acct_invalid: rejected before submission; no time, no histogram. */
  invalid(type: BlockAcctType): void {
    this.invalidOps[type]++;
    if (this.accountInvalid) this.lastAccessTimeNs = nowNs();
  }

  /** block_acct_merge_done: `n` requests were merged into others. */
  mergeDone(type: BlockAcctType, n: number): void {
    this.merged[type] += n;
  }

  private accountIntervals(type: BlockAcctType, lat: number, now: number): void {
    for (const s of this.intervals) s.latency[type].account(lat, now);
  }

  /** block_latency_histogram_set: false (and nothing changed) for invalid boundaries. */
  setHistogram(type: BlockAcctType, boundaries: readonly number[]): boolean {
    if (!LatencyHistogram.valid(boundaries)) return false;
    this.histograms[type] = new LatencyHistogram(boundaries);
    return true;
  }

  clearHistograms(): void {
    for (let i = 0; i < BLOCK_MAX_IOTYPE; i++) this.histograms[i] = null;
  }

  idleTimeNs(): number {
    return nowNs() - this.lastAccessTimeNs;
  }
}
