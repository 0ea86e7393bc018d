// The return objects of query-blockstats and query-block, and block-latency-histogram-set,
// as QEMU 7.2 builds them (block/qapi.c, block/qapi-sysemu.c; shapes from
// qapi/block-core.json). Plain functions: the QMP layer wraps them into commands.

import { genericError } from "../qmp/errors.js";
import { BlockAcctStats, BlockAcctType, type LatencyHistogram } from "./accounting.js";
import type { BlockBackend } from "./backend.js";
import type { BlockDriver } from "./driver.js";
import { imageInfo } from "./info.js";
import type {
  BlockDeviceInfo,
  BlockDeviceStats,
  BlockInfo,
  BlockLatencyHistogramInfo,
  BlockStats,
  ImageInfo,
} from "../qapi/generated/types.js";

// The wire types come from the schema (schema/block.json); re-exported for the block layer's users.
export type { BlockDeviceInfo, BlockDeviceStats, BlockInfo, BlockLatencyHistogramInfo, BlockStats };

function histogramInfo(h: LatencyHistogram | null): BlockLatencyHistogramInfo | undefined {
  return h ? { boundaries: Array.from(h.boundaries), bins: Array.from(h.bins) } : undefined;
}

/** bdrv_query_blk_stats: the counters of one backend. */
export function blockDeviceStats(s: BlockAcctStats, wrHighestOffset: number): BlockDeviceStats {
  const R = BlockAcctType.READ;
  const W = BlockAcctType.WRITE;
  const F = BlockAcctType.FLUSH;
  const U = BlockAcctType.UNMAP;
  const ds: BlockDeviceStats = {
    rd_bytes: s.nrBytes[R],
    wr_bytes: s.nrBytes[W],
    unmap_bytes: s.nrBytes[U],
    rd_operations: s.nrOps[R],
    wr_operations: s.nrOps[W],
    flush_operations: s.nrOps[F],
    unmap_operations: s.nrOps[U],
    rd_total_time_ns: Math.round(s.totalTimeNs[R]),
    wr_total_time_ns: Math.round(s.totalTimeNs[W]),
    flush_total_time_ns: Math.round(s.totalTimeNs[F]),
    unmap_total_time_ns: Math.round(s.totalTimeNs[U]),
    wr_highest_offset: wrHighestOffset,
    rd_merged: s.merged[R],
    wr_merged: s.merged[W],
    unmap_merged: s.merged[U],
    // Absent until the first access (block_acct_idle_time_ns).
    ...(s.lastAccessTimeNs > 0 ? { idle_time_ns: Math.round(s.idleTimeNs()) } : {}),
    failed_rd_operations: s.failedOps[R],
    failed_wr_operations: s.failedOps[W],
    failed_flush_operations: s.failedOps[F],
    failed_unmap_operations: s.failedOps[U],
    invalid_rd_operations: s.invalidOps[R],
    invalid_wr_operations: s.invalidOps[W],
    invalid_flush_operations: s.invalidOps[F],
    invalid_unmap_operations: s.invalidOps[U],
    account_invalid: s.accountInvalid,
    account_failed: s.accountFailed,
    timed_stats: s.intervals.map((t) => {
      const l = t.latency;
      const depth = (type: BlockAcctType): number => {
        const { sum, elapsed } = l[type].sum();
        return elapsed > 0 ? sum / elapsed : 0;
      };
      return {
        interval_length: t.intervalLength,
        min_rd_latency_ns: Math.round(l[R].min()),
        max_rd_latency_ns: Math.round(l[R].max()),
        avg_rd_latency_ns: Math.round(l[R].avg()),
        min_wr_latency_ns: Math.round(l[W].min()),
        max_wr_latency_ns: Math.round(l[W].max()),
        avg_wr_latency_ns: Math.round(l[W].avg()),
        min_flush_latency_ns: Math.round(l[F].min()),
        max_flush_latency_ns: Math.round(l[F].max()),
        avg_flush_latency_ns: Math.round(l[F].avg()),
        avg_rd_queue_depth: depth(R),
        avg_wr_queue_depth: depth(W),
      };
    }),
  };
  return histograms(ds, s);
}

function histograms(ds: BlockDeviceStats, s: BlockAcctStats): BlockDeviceStats {
  const rd = histogramInfo(s.histograms[BlockAcctType.READ]);
  const wr = histogramInfo(s.histograms[BlockAcctType.WRITE]);
  const fl = histogramInfo(s.histograms[BlockAcctType.FLUSH]);
  if (rd) ds.rd_latency_histogram = rd;
  if (wr) ds.wr_latency_histogram = wr;
  if (fl) ds.flush_latency_histogram = fl;
  return ds;
}

/** A node below the backend: counters are zero, as QEMU reports nodes without a BlockBackend. */
function nodeStats(nodeName: string | undefined, wrHighest: number, file: boolean): BlockStats {
  const zero = blockDeviceStats(emptyStats, wrHighest);
  const out = {} as BlockStats;
  if (nodeName) out["node-name"] = nodeName;
  out.stats = zero;
  if (file) out["driver-specific"] = { driver: "file", "discard-nb-ok": 0, "discard-nb-failed": 0, "discard-bytes-ok": 0 };
  return out;
}

const emptyStats = new BlockAcctStats();
emptyStats.accountInvalid = false;
emptyStats.accountFailed = false;

function chainStats(b: BlockBackend, d: BlockDriver, depth: number): BlockStats {
  const names = b.backingNodeNames[depth];
  const s = nodeStats(names?.format, 0, false);
  s.parent = nodeStats(names?.file, 0, true);
  if (d.backing) s.backing = chainStats(b, d.backing, depth + 1);
  return s;
}

/** One element of query-blockstats for a backend (bdrv_query_stats with blk_level). */
export function blockstatsInfo(b: BlockBackend): BlockStats {
  const out: BlockStats = { device: b.id } as BlockStats;
  if (b.qdev) out.qdev = b.qdev;
  out["node-name"] = b.nodeName;
  out.stats = blockDeviceStats(b.stats, b.wrHighestOffset);
  out.parent = nodeStats(b.fileNodeName, b.drv.format === "raw" ? b.wrHighestOffset : 0, true);
  if (b.drv.backing) out.backing = chainStats(b, b.drv.backing, 0);
  return out;
}

/** BlockDeviceInfo of one node (bdrv_block_device_info); `file` nodes have drv "file". */
async function deviceInfo(d: BlockDriver, nodeName: string, drv: string, ro: boolean, withBacking: boolean, backingImage = true): Promise<BlockDeviceInfo> {
  let depth = 0;
  for (let x = d.backing; x; x = x.backing) depth++;
  const inserted: BlockDeviceInfo = {
    file: d.filename,
    "node-name": nodeName,
    ro,
    drv,
  } as BlockDeviceInfo;
  if (withBacking && d.backingFilename !== undefined) inserted.backing_file = d.backingFilename;
  Object.assign(inserted, {
    backing_file_depth: depth,
    encrypted: false,
    detect_zeroes: "off",
    bps: 0,
    bps_rd: 0,
    bps_wr: 0,
    iops: 0,
    iops_rd: 0,
    iops_wr: 0,
    image: drv === "file" ? await fileImageInfo(d) : await imageInfo(d, d.filename, backingImage),
    cache: { writeback: true, direct: false, "no-flush": false },
    write_threshold: 0,
  });
  if (!withBacking) inserted.backing_file_depth = 0;
  return inserted;
}

/** The protocol node's ImageInfo: the file seen as raw bytes. */
async function fileImageInfo(d: BlockDriver): Promise<ImageInfo> {
  const { stat } = await import("node:fs/promises");
  const st = await stat(d.filename);
  return { "virtual-size": st.size, filename: d.filename, format: "file", "actual-size": st.blocks * 512, "dirty-flag": false };
}

/** query-named-block-nodes for one backend's chain: each format node, then its file node. */
/** query-named-block-nodes for one drive's chain; `flat` leaves out each image's backing-image. */
export async function namedBlockNodes(b: BlockBackend, flat = false): Promise<BlockDeviceInfo[]> {
  const out: BlockDeviceInfo[] = [];
  let d: BlockDriver | null = b.drv;
  for (let i = -1; d; i++, d = d.backing) {
    const names = i < 0 ? { format: b.nodeName, file: b.fileNodeName } : b.backingNodeNames[i];
    const ro = i < 0 ? b.readOnly : true;
    out.push(await deviceInfo(d, names.format, d.format, ro, true, !flat));
    out.push(await deviceInfo(d, names.file, "file", ro, false, !flat));
  }
  return out;
}

/** One element of query-block (bdrv_query_info). */
export async function blockInfo(b: BlockBackend): Promise<BlockInfo> {
  const inserted = await deviceInfo(b.drv, b.nodeName, b.drv.format, b.readOnly, true);
  const info: BlockInfo = { device: b.id } as BlockInfo;
  if (b.qdev) info.qdev = b.qdev;
  Object.assign(info, { type: "unknown", removable: false, locked: false, inserted });
  if (b.qdev) info["io-status"] = "ok";
  return info;
}

/** Arguments of block-latency-histogram-set (QEMU 7.2: no boundaries-zap yet). */
export interface LatencyHistogramSetArgs {
  id: string;
  boundaries?: number[];
  "boundaries-read"?: number[];
  "boundaries-write"?: number[];
  "boundaries-flush"?: number[];
}

/**
 * qmp_block_latency_histogram_set: no lists at all removes every histogram; `boundaries`
 * applies to each type without its own list; the first invalid list stops with QEMU's error.
 */
export function setLatencyHistogram(b: BlockBackend, args: LatencyHistogramSetArgs): void {
  const s = b.stats;
  const all = args.boundaries;
  const per: Array<[BlockAcctType, number[] | undefined, string]> = [
    [BlockAcctType.READ, args["boundaries-read"], "read"],
    [BlockAcctType.WRITE, args["boundaries-write"], "write"],
    [BlockAcctType.FLUSH, args["boundaries-flush"], "flush"],
  ];
  if (all === undefined && per.every(([, l]) => l === undefined)) {
    s.clearHistograms();
    return;
  }
  for (const [type, list, name] of per) {
    const use = list ?? all;
    if (use === undefined) continue;
    if (!s.setHistogram(type, use)) throw genericError(`Device '${args.id}' set ${name} boundaries fail`);
  }
}

