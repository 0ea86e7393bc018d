import { describe, expect, it } from "vitest";
import { BlockAcctStats, BlockAcctType, LatencyHistogram, nowNs } from "../../src/block/accounting.js";
import { BlockBackend } from "../../src/block/backend.js";
import type { BlockDriver } from "../../src/block/driver.js";
import { blockDeviceStats, blockstatsInfo, setLatencyHistogram } from "../../src/block/qapi-block.js";
import { QmpError } from "../../src/qmp/errors.js";

function bins(boundaries: number[], latencies: number[]): number[] {
  const h = new LatencyHistogram(boundaries);
  for (const l of latencies) h.account(l);
  return Array.from(h.bins);
}

/** A driver whose requests succeed or fail on demand, never touching a disk. */
function fakeDriver(size: number, fail = false): BlockDriver {
  const ok = async (): Promise<void> => {
    if (fail) throw new Error("EIO");
  };
  return {
    format: "raw", filename: "fake", readOnly: false, size, clusterSize: undefined, backing: null,
    backingFilename: undefined, backingFormat: undefined,
    read: async (_o: number, n: number) => { await ok(); return new Uint8Array(n); },
    write: ok, writeZeroes: ok, discard: ok, flush: ok,
    blockStatus: async (o: number, n: number) => ({ start: o, length: n, depth: 0, present: true, zero: false, data: true, compressed: false }),
    actualSize: async () => 0, dirty: () => false, formatSpecific: () => undefined, close: async () => undefined,
  };
}

describe("latency histogram bins", () => {
  it("puts a latency equal to a boundary in the bin that starts there", () => {
    expect(bins([10, 50, 100], [0, 9, 10, 49, 50, 99, 100, 1e12])).toEqual([2, 2, 2, 2]);
  });
  it("with one boundary has two bins [0,b) and [b,inf)", () => {
    expect(bins([1000], [999, 1000, 1001])).toEqual([1, 2]);
  });
  it("with an empty list counts everything in one bin, as QEMU accepts []", () => {
    expect(bins([], [1, 1e9])).toEqual([2]);
  });
  it("rejects non-increasing, zero or duplicate boundaries", () => {
    expect(LatencyHistogram.valid([0, 10])).toBe(false);
    expect(LatencyHistogram.valid([10, 10])).toBe(false);
    expect(LatencyHistogram.valid([20, 10])).toBe(false);
    expect(LatencyHistogram.valid([1, 2, 3])).toBe(true);
  });
});

describe("block-latency-histogram-set", () => {
  const b = new BlockBackend("drive0", fakeDriver(1 << 20));

  it("applies `boundaries` to read, write and flush; per-op lists override it", () => {
    setLatencyHistogram(b, { id: "drive0", boundaries: [10, 20], "boundaries-write": [5] });
    const s = blockDeviceStats(b.stats, 0);
    expect(s.rd_latency_histogram).toEqual({ boundaries: [10, 20], bins: [0, 0, 0] });
    expect(s.wr_latency_histogram).toEqual({ boundaries: [5], bins: [0, 0] });
    expect(s.flush_latency_histogram).toEqual({ boundaries: [10, 20], bins: [0, 0, 0] });
  });

  it("resets the counts when set again and leaves untouched types alone", async () => {
    setLatencyHistogram(b, { id: "drive0", "boundaries-read": [1e15] });
    await b.read(0, 512);
    await b.flush();
    expect(blockDeviceStats(b.stats, 0).rd_latency_histogram!.bins).toEqual([1, 0]);
    expect(blockDeviceStats(b.stats, 0).flush_latency_histogram!.bins).toEqual([0, 0, 1]);
    setLatencyHistogram(b, { id: "drive0", "boundaries-read": [1e15] });
    expect(blockDeviceStats(b.stats, 0).rd_latency_histogram!.bins).toEqual([0, 0]);
  });

  it("removes every histogram when given only the id", () => {
    setLatencyHistogram(b, { id: "drive0" });
    const s = blockDeviceStats(b.stats, 0);
    expect(s.rd_latency_histogram).toBeUndefined();
    expect(s.wr_latency_histogram).toBeUndefined();
    expect(s.flush_latency_histogram).toBeUndefined();
  });

  it("fails with QEMU's GenericError text on bad boundaries", () => {
    let err: unknown;
    try {
      setLatencyHistogram(b, { id: "drive0", "boundaries-write": [5, 5] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).toWire()).toEqual({ class: "GenericError", desc: "Device 'drive0' set write boundaries fail" });
  });
});

describe("accounting", () => {
  it("counts done, failed and invalid requests as QEMU does", async () => {
    const good = new BlockBackend("d", fakeDriver(4096));
    await good.read(0, 512);
    await good.write(512, new Uint8Array(1024));
    await expect(good.read(4000, 512)).rejects.toThrow();
    const bad = new BlockBackend("e", fakeDriver(4096, true));
    await expect(bad.write(0, new Uint8Array(512))).rejects.toThrow("EIO");
    const g = blockstatsInfo(good);
    expect(g.stats.rd_operations).toBe(1);
    expect(g.stats.rd_bytes).toBe(512);
    expect(g.stats.wr_bytes).toBe(1024);
    expect(g.stats.wr_highest_offset).toBe(1536);
    expect(g.stats.invalid_rd_operations).toBe(1);
    expect(g.stats.idle_time_ns).toBeGreaterThanOrEqual(0);
    const e = blockstatsInfo(bad).stats;
    expect(e.failed_wr_operations).toBe(1);
    expect(e.wr_operations).toBe(0);
    expect(e.wr_bytes).toBe(0);
    expect(e.wr_total_time_ns).toBeGreaterThan(0);
  });

  it("omits idle_time_ns before the first access and lists members in QEMU 7.2's order", () => {
    const s = blockDeviceStats(new BlockAcctStats(), 0);
    expect(s.idle_time_ns).toBeUndefined();
    expect(Object.keys(s).slice(0, 4)).toEqual(["rd_bytes", "wr_bytes", "unmap_bytes", "rd_operations"]);
    expect(Object.keys(s)).toContain("timed_stats");
  });

  it("invalid requests change no time and no histogram; with account_invalid off, not last access", () => {
    const st = new BlockAcctStats();
    st.setHistogram(BlockAcctType.READ, [1]);
    st.accountInvalid = false;
    st.invalid(BlockAcctType.READ);
    expect(st.lastAccessTimeNs).toBe(0);
    expect(Array.from(st.histograms[BlockAcctType.READ]!.bins)).toEqual([0, 0]);
    expect(st.totalTimeNs[BlockAcctType.READ]).toBe(0);
  });

  it("failed requests with account_failed off count but add no time", () => {
    const st = new BlockAcctStats();
    st.accountFailed = false;
    st.failed(BlockAcctType.WRITE, nowNs() - 1000);
    expect(st.failedOps[BlockAcctType.WRITE]).toBe(1);
    expect(st.totalTimeNs[BlockAcctType.WRITE]).toBe(0);
  });

  it("reports timed stats per interval", async () => {
    const b = new BlockBackend("t", fakeDriver(4096), { statsIntervals: [60] });
    await b.read(0, 512);
    const t = blockstatsInfo(b).stats.timed_stats[0];
    expect(t.interval_length).toBe(60);
    expect(t.max_rd_latency_ns).toBeGreaterThan(0);
    expect(t.min_wr_latency_ns).toBe(0);
  });
});
