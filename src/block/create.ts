// Image creation (`img create`, QEMU's qcow2_co_create / raw_co_create): a qcow2 image starts
// as header, refcount table, refcount block(s) and an empty L1 table, laid out exactly as
// qemu-img lays out a fresh image, so both tools produce the same bytes.

import { open } from "node:fs/promises";
import type { IoPool } from "./io-pool.js";
import { backingPath, openImage } from "./image.js";
import { buildHeader, COMPAT_LAZY_REFCOUNTS, putU64, type Qcow2Header } from "./qcow2-format.js";
import { setRefcount } from "./qcow2-refcount.js";

export interface CreateOptions {
  filename: string;
  format: "raw" | "qcow2";
  /** Bytes; for qcow2 with a backing file it defaults to the backing file's size. */
  size?: number;
  clusterSize?: number;
  compat?: "0.10" | "1.1" | "v2" | "v3";
  backingFile?: string;
  backingFormat?: string;
  lazyRefcounts?: boolean;
  refcountBits?: number;
  pool: IoPool;
}

/** The `Formatting '...', fmt=...` line qemu-img create prints, with the same option order. */
export function formattingLine(o: CreateOptions, size: number): string {
  // As an integer, not JavaScript's shortest round-trip form (1E is 1152921504606846976).
  const bytes = BigInt(size).toString();
  if (o.format === "raw") return `Formatting '${o.filename}', fmt=raw size=${bytes}`;
  const parts = [`Formatting '${o.filename}', fmt=qcow2`, `cluster_size=${o.clusterSize ?? 65536}`, "extended_l2=off", "compression_type=zlib", `size=${bytes}`];
  if (o.backingFile) parts.push(`backing_file=${o.backingFile}`);
  if (o.backingFormat) parts.push(`backing_fmt=${o.backingFormat}`);
  if (o.compat === "0.10" || o.compat === "v2") parts.push("compat=0.10");
  parts.push(`lazy_refcounts=${o.lazyRefcounts ? "on" : "off"}`, `refcount_bits=${o.refcountBits ?? 16}`);
  return parts.join(" ");
}

/** Validates the options and fills in size and backing format; errors use qemu-img's words. */
export async function resolveCreateOptions(o: CreateOptions): Promise<CreateOptions & { size: number }> {
  const out = { ...o };
  if (o.format === "qcow2") {
    const cs = o.clusterSize ?? 65536;
    if (!Number.isInteger(cs) || cs < 512 || cs > 2 * 1024 * 1024 || (cs & (cs - 1)) !== 0) {
      throw new Error("Cluster size must be a power of two between 512 and 2048k");
    }
    const v2 = o.compat === "0.10" || o.compat === "v2";
    if (o.compat !== undefined && !["0.10", "1.1", "v2", "v3"].includes(o.compat)) throw new Error(`Invalid parameter '${o.compat}'`);
    if (v2 && o.lazyRefcounts) throw new Error("Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)");
    const rb = o.refcountBits ?? 16;
    if (![1, 2, 4, 8, 16, 32, 64].includes(rb)) throw new Error("Refcount width must be a power of two and may not exceed 64 bits");
    if (v2 && rb !== 16) throw new Error("Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)");
    if (o.backingFile) {
      if (!o.backingFormat) throw new Error(`${o.filename}: Backing file specified without backing format`);
      const path = backingPath(o.filename, o.backingFile);
      // bdrv_img_create reads the backing size with force-share, so an image in use can be a base.
      const b = await openImage(path, { pool: o.pool, readOnly: true, format: o.backingFormat, forceShare: true }).catch((e: Error) => {
        throw new Error(`Could not open backing image: ${e.message}`);
      });
      if (out.size === undefined) out.size = b.size;
      await b.close();
    }
  }
  if (out.size === undefined) throw new Error("Image creation needs a size parameter");
  if (!Number.isInteger(out.size) || out.size < 0 || !(out.size < 2 ** 63)) throw new Error("Invalid image size specified. Must be between 0 and 9223372036854775807.");
  return out as CreateOptions & { size: number };
}

/** QEMU's QCOW_MAX_L1_SIZE: a larger L1 table is refused at create and at open. */
const QCOW_MAX_L1_BYTES = 0x2000000;

export async function createImage(opts: CreateOptions): Promise<void> {
  const o = await resolveCreateOptions(opts);
  if (o.format === "qcow2") {
    // qcow2_co_create refuses before it creates anything.
    const cs = o.clusterSize ?? 65536;
    const l1Entries = Math.ceil(o.size / cs / (cs / 8));
    if (l1Entries * 8 > QCOW_MAX_L1_BYTES) throw new Error(`${o.filename}: The image size is too large for file format 'qcow2' (try using a larger cluster size)`);
  } else if (!Number.isSafeInteger(o.size)) {
    throw new Error(`${o.filename}: Image size ${o.size} is too large for minivm to create exactly (more than 2^53 bytes)`);
  }
  const fh = await open(o.filename, "w");
  try {
    if (o.format === "raw") {
      // file-posix creates whole sectors: qemu-img create -f raw F 8 makes a 512-byte file.
      await fh.truncate(Math.ceil(o.size / 512) * 512);
      return;
    }
    const cs = o.clusterSize ?? 65536;
    const clusterBits = Math.log2(cs);
    const v3 = !(o.compat === "0.10" || o.compat === "v2");
    const refcountOrder = Math.log2(o.refcountBits ?? 16);
    const l2Entries = cs / 8;
    const l1Size = Math.ceil(Math.ceil(o.size / cs) / l2Entries);
    const l1Clusters = Math.ceil((l1Size * 8) / cs);
    const perBlock = (cs * 8) >> refcountOrder;
    // Header, refcount table, refblocks, L1; grow the table/blocks until they cover it all.
    let rt = 1;
    let rb = 1;
    for (;;) {
      const total = 1 + rt + rb + l1Clusters;
      const rb2 = Math.ceil(total / perBlock);
      const rt2 = Math.ceil((rb2 * 8) / cs);
      if (rb2 === rb && rt2 === rt) break;
      rb = rb2;
      rt = rt2;
    }
    const reftableOff = cs;
    const refblockOff = cs * (1 + rt);
    const l1Off = cs * (1 + rt + rb);
    const used = 1 + rt + rb + l1Clusters;
    const h: Qcow2Header = {
      version: v3 ? 3 : 2,
      backingFileOffset: 0,
      backingFileSize: 0,
      clusterBits,
      size: o.size,
      cryptMethod: 0,
      l1Size,
      l1TableOffset: l1Off,
      refcountTableOffset: reftableOff,
      refcountTableClusters: rt,
      nbSnapshots: 0,
      snapshotsOffset: 0,
      incompatible: 0,
      compatible: v3 && o.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0,
      autoclear: 0,
      refcountOrder,
      headerLength: v3 ? 112 : 72,
      compressionType: 0,
    };
    const header = buildHeader(h, { backingFile: o.backingFile, backingFormat: o.backingFile ? o.backingFormat : undefined }, cs);
    const table = new Uint8Array(rt * cs);
    const blocks = new Uint8Array(rb * cs);
    for (let i = 0; i < rb; i++) putU64(table, 8 * i, refblockOff + i * cs);
    for (let c = 0; c < used; c++) setRefcount(blocks.subarray(Math.floor(c / perBlock) * cs), c % perBlock, refcountOrder, 1);
    // Everything the header points to goes down before the header itself.
    await o.pool.pwrite(fh.fd, reftableOff, table);
    await o.pool.pwrite(fh.fd, refblockOff, blocks);
    if (l1Size > 0) await o.pool.pwrite(fh.fd, l1Off, new Uint8Array(l1Size * 8));
    await o.pool.pwrite(fh.fd, 0, header);
    await fh.truncate(l1Off + l1Size * 8);
    await o.pool.fdatasync(fh.fd);
  } finally {
    await fh.close();
  }
}

/** Parses qemu-img's size syntax: plain bytes or a k/K, M, G, T, P, E suffix (powers of 1024). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([bkKMGTPE]?)$/.exec(s.trim());
  if (!m) throw new Error("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
  const mult: Record<string, number> = { "": 1, b: 1, k: 1024, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4, P: 1024 ** 5, E: 1024 ** 6 };
  const v = Math.round(parseFloat(m[1]) * mult[m[2]]);
  // Beyond 2^53 a size is no longer exact here, but every format refuses such sizes anyway,
  // each in its own words (qcow2: its L1 table would not fit); only 8 EiB is refused here.
  if (!(v < 2 ** 63)) throw new Error("Image size must be less than 8 EiB!");
  return v;
}

