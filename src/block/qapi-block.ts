// The return objects of query-blockstats and query-block, and block-latency-histogram-set,
// as QEMU 7.2 builds them (block/qapi.c, block/qapi-sysemu.c; shapes from
// qapi/block-core.json). Plain functions: the QMP layer wraps them into commands.

import { genericError } from "../qmp/errors.js";
import { BlockAcctStats, BlockAcctType, type LatencyHistogram } from "./accounting.js";
import { stat } from "node:fs/promises";
import { BlockBackend } from "./backend.js";
import type { BlockGraph, BlockNode } from "./node.js";
import type { BlockDriver } from "./driver.js";
import { backingPath } from "./image.js";
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

const emptyStats = new BlockAcctStats();
emptyStats.accountInvalid = false;
emptyStats.accountFailed = false;

/**
 * bdrv_query_bds_stats: a node's own statistics (counters zero: they belong to a
 * BlockBackend), its data child as `parent`, and at backend level its `backing` too.
 */
function nodeStats(node: BlockNode, blkLevel: boolean, wrHighest: number): BlockStats {
  const out = {} as BlockStats;
  out["node-name"] = node.nodeName;
  out.stats = blockDeviceStats(emptyStats, wrHighest);
  if (node.driverName === "file") out["driver-specific"] = { driver: "file", "discard-nb-ok": 0, "discard-nb-failed": 0, "discard-bytes-ok": 0 };
  if (node.file) out.parent = nodeStats(node.file, blkLevel, fileWrHighest(node, wrHighest));
  if (blkLevel && node.backing) out.backing = nodeStats(node.backing, blkLevel, 0);
  return out;
}

/** The protocol child's wr_highest_offset: the same as its raw parent's, 0 below qcow2. */
function fileWrHighest(parent: BlockNode, parentWrHighest: number): number {
  return parent.driverName === "raw" ? parentWrHighest : 0;
}

/** One element of query-blockstats for a backend (qmp_query_blockstats at BlockBackend level). */
export function blockstatsInfo(b: BlockBackend): BlockStats {
  const node = nodeStats(b.root, true, b.wrHighestOffset);
  const out: BlockStats = { device: b.id } as BlockStats;
  if (b.qdev) out.qdev = b.qdev;
  // The backend's counters replace the node's zeros (bdrv_query_blk_stats).
  return Object.assign(out, node, { stats: blockDeviceStats(b.stats, b.wrHighestOffset) });
}

/** query-blockstats with query-nodes: every node in creation order, each without its backing. */
export function nodeBlockstats(graph: BlockGraph): BlockStats[] {
  return graph.all().map((n) => nodeStats(n, false, n.backend instanceof BlockBackend ? n.backend.wrHighestOffset : 0));
}

/**
 * bdrv_block_device_info for one node. Without `flat` the image's backing chain is
 * described too and counted in backing_file_depth; with it, neither.
 */
async function deviceInfo(node: BlockNode, flat: boolean): Promise<BlockDeviceInfo> {
  const d = node.drv;
  const inserted: BlockDeviceInfo = {
    file: d.filename,
    "node-name": node.nodeName,
    ro: node.readOnly,
    drv: node.driverName,
  } as BlockDeviceInfo;
  // bs->backing_file: the header's name resolved against the overlay's (path_combine).
  if (node.driverName !== "file" && d.backingFilename !== undefined) inserted.backing_file = backingPath(d.filename, d.backingFilename);
  Object.assign(inserted, {
    backing_file_depth: flat ? 0 : node.backingDepth,
    encrypted: false,
    detect_zeroes: "off",
    bps: 0,
    bps_rd: 0,
    bps_wr: 0,
    iops: 0,
    iops_rd: 0,
    iops_wr: 0,
    image: node.driverName === "file" ? await fileImageInfo(d) : await imageInfo(d, d.filename, !flat),
    cache: { writeback: true, direct: false, "no-flush": false },
    write_threshold: 0,
  });
  return inserted;
}

/** The protocol node's ImageInfo: the file seen as raw bytes. */
async function fileImageInfo(d: BlockDriver): Promise<ImageInfo> {
  const st = await stat(d.filename);
  return { "virtual-size": st.size, filename: d.filename, format: "file", "actual-size": st.blocks * 512, "dirty-flag": false };
}

/** query-named-block-nodes: every node, newest first, as QEMU lists graph_bdrv_states. */
export async function namedBlockNodes(graph: BlockGraph, flat = false): Promise<BlockDeviceInfo[]> {
  const out: BlockDeviceInfo[] = [];
  for (const n of graph.all().reverse()) out.push(await deviceInfo(n, flat));
  return out;
}

/** One element of query-block (bdrv_query_info). */
export async function blockInfo(b: BlockBackend): Promise<BlockInfo> {
  const inserted = await deviceInfo(b.root, false);
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

