// `check` for qcow2 (QEMU block/qcow2-refcount.c, qcow2_check_refcounts): walk every table,
// count the references each host cluster should have, compare with the refcount blocks,
// and optionally repair. Leaks (refcount too high) are fixed in place; a cluster in use with
// refcount 0 or a broken refblock makes the whole refcount structure be rebuilt at the end
// of the file, which is also what makes an image left behind by kill -9 whole again.

import { compressedDescriptor, ImageOpenError, QCOW_MAX_L1_SIZE, QCOW_MAX_SNAPSHOTS, QCOW_SNAPSHOT_HEADER_SIZE, readSnapshots, ENTRY_COMPRESSED_HI, ENTRY_COPIED_HI, ENTRY_ZERO_LO, entryOffset, INCOMPAT_CORRUPT, INCOMPAT_DIRTY, putU64, u32, u64 } from "./qcow2-format.js";
import { setRefcount } from "./qcow2-refcount.js";
import type { Qcow2Driver } from "./qcow2.js";

/** BdrvCheckResult plus the fields `qemu-img check` prints. */
export interface CheckResult {
  checkErrors: number;
  corruptions: number;
  leaks: number;
  corruptionsFixed: number;
  leaksFixed: number;
  imageEndOffset: number;
  totalClusters: number;
  allocatedClusters: number;
  fragmentedClusters: number;
  compressedClusters: number;
  /** What QEMU prints to stderr while checking (ERROR/Leaked/Repairing lines). */
  messages: string[];
  /** The check could not run to the end (QEMU: bdrv_check < 0): strerror of the cause. */
  failed?: string;
}

export interface CheckOptions {
  repair?: "leaks" | "all";
}

/** A 64-bit table entry in hex from its halves, exact at any width (QEMU's PRIx64). */
function hex64(hi: number, lo: number): string {
  return ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);
}

class Counts {
  a = new Float64Array(1024);
  /** One past the highest cluster referenced. */
  top = 0;
  inc(cluster: number): void {
    if (cluster >= this.top) this.top = cluster + 1;
    if (cluster >= this.a.length) {
      const b = new Float64Array(Math.max(cluster + 1, this.a.length * 2));
      b.set(this.a);
      this.a = b;
    }
    this.a[cluster]++;
  }
  get(cluster: number): number {
    return cluster < this.a.length ? this.a[cluster] : 0;
  }
}

/**
 * qcow2_check_read_snapshot_table: the open in check mode skipped the snapshot table, so the
 * check reads it first, and stops (Check failed) when it cannot.
 */
async function readSnapshotTable(d: Qcow2Driver): Promise<{ messages: string[]; failed: string } | null> {
  const h = d.header;
  const nb = h.nbSnapshots;
  const fail = (what: string, errno: string): { messages: string[]; failed: string } => ({ messages: [`minivm img: ERROR ${what}`], failed: errno });
  if (nb > QCOW_MAX_SNAPSHOTS) return fail("snapshot table too large", "File too large");
  if (!Number.isFinite(h.snapshotsOffset) || h.snapshotsOffset + nb * QCOW_SNAPSHOT_HEADER_SIZE > 2 ** 63 || h.snapshotsOffset % d.cs !== 0) {
    return fail("snapshot table offset invalid", "Invalid argument");
  }
  if (nb === 0) return null;
  try {
    await readSnapshots((o, n) => d.pool.pread(d.fd, o, n), h.snapshotsOffset, nb);
  } catch (e) {
    if (!(e instanceof ImageOpenError)) throw e;
    return fail(`failed to read the snapshot table: ${e.message}`, /too big|Too much/.test(e.message) ? "File too large" : "Input/output error");
  }
  return null;
}

function failedCheck(d: Qcow2Driver, messages: string[], failed: string): CheckResult {
  return {
    checkErrors: 1,
    corruptions: 0,
    leaks: 0,
    corruptionsFixed: 0,
    leaksFixed: 0,
    imageEndOffset: 0,
    totalClusters: Math.ceil(d.size / d.cs),
    allocatedClusters: 0,
    fragmentedClusters: 0,
    compressedClusters: 0,
    messages,
    failed,
  };
}

export async function checkQcow2(d: Qcow2Driver, opts: CheckOptions = {}): Promise<CheckResult> {
  const snapshots = await readSnapshotTable(d);
  if (snapshots !== null) return failedCheck(d, snapshots.messages, snapshots.failed);
  const first = await checkOnce(d, opts.repair);
  if (!opts.repair) return first;
  const fixedSomething = first.leaksFixed + first.corruptionsFixed > 0;
  const second = fixedSomething ? await checkOnce(d, undefined) : first;
  const result = { ...second, leaksFixed: first.leaksFixed, corruptionsFixed: first.corruptionsFixed, messages: [...first.messages, ...(fixedSomething ? second.messages : [])] };
  if (result.checkErrors === 0 && result.corruptions === 0 && !d.readOnly) {
    const h = d.header;
    let changed = false;
    if (h.incompatible & INCOMPAT_DIRTY) {
      h.incompatible &= ~INCOMPAT_DIRTY;
      changed = true;
    }
    if (opts.repair === "all" && h.incompatible & INCOMPAT_CORRUPT) {
      h.incompatible &= ~INCOMPAT_CORRUPT;
      d.corrupt = false;
      changed = true;
    }
    if (changed) {
      await d.pool.fdatasync(d.fd);
      await d.writeFeatureWords();
      await d.pool.fdatasync(d.fd);
    }
  }
  return result;
}

async function checkOnce(d: Qcow2Driver, repair: "leaks" | "all" | undefined, afterRebuild = false): Promise<CheckResult> {
  if (!d.readOnly) await d.writeback();
  d.dropCaches();
  const h = d.header;
  const cs = d.cs;
  const r: CheckResult = {
    checkErrors: 0,
    corruptions: 0,
    leaks: 0,
    corruptionsFixed: 0,
    leaksFixed: 0,
    imageEndOffset: 0,
    totalClusters: Math.ceil(d.size / cs),
    allocatedClusters: 0,
    fragmentedClusters: 0,
    compressedClusters: 0,
    messages: [],
  };
  const fileSize = (await (await import("node:fs/promises")).stat(d.filename)).size;
  const nbClusters = Math.ceil(fileSize / cs);
  const refs = new Counts();
  const incRange = (off: number, len: number): void => {
    if (len <= 0) return;
    // qcow2_inc_refcounts_imrt: a reference a cluster or more past the end of the file is an error.
    if (off + len - fileSize >= cs) {
      r.messages.push(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${off.toString(16)} size 0x${len.toString(16)}`);
      r.corruptions++;
      return;
    }
    for (let c = Math.floor(off / cs); c <= Math.floor((off + len - 1) / cs); c++) refs.inc(c);
  };
  /** Data clusters whose COPIED flag must be checked once refcounts are known. */
  const copiedChecks: Array<{ kind: "l1" | "l2"; index: number; hi: number; lo: number; host: number; where: number }> = [];
  let rebuild = false;

  // check_refcounts_l1 and check_refcounts_l2: every table, the snapshots' included, is
  // read and counted as it stands; a misaligned or reserved-bit entry is reported and then
  // used anyway, exactly as QEMU counts it, so that the verdicts match.
  const walkL1 = async (l1Offset: number, l1Size: number, active: boolean): Promise<void> => {
    if (l1Size === 0) return;
    incRange(l1Offset, l1Size * 8);
    const l1 = active ? d.l1 : await d.pool.pread(d.fd, l1Offset, l1Size * 8);
    for (let i = 0; i < l1Size; i++) {
      const hi = u32(l1, 8 * i);
      const lo = u32(l1, 8 * i + 4);
      if (hi === 0 && lo === 0) continue;
      // L1E_RESERVED_MASK: bits 0-8 and 56-62.
      if ((hi & 0x7f000000) !== 0 || (lo & 0x1ff) !== 0) {
        r.messages.push(`ERROR found L1 entry with reserved bits set: ${hex64(hi, lo)}`);
        r.corruptions++;
      }
      const l2off = entryOffset(hi, lo);
      incRange(l2off, cs);
      if (l2off % cs !== 0) {
        r.messages.push(`ERROR l2_offset=${l2off.toString(16)}: Table is not cluster aligned; L1 entry corrupted`);
        r.corruptions++;
      }
      if (active && l2off !== 0) copiedChecks.push({ kind: "l1", index: i, hi, lo, host: l2off, where: l1Offset + 8 * i });
      const t = await d.pool.pread(d.fd, l2off, cs);
      let nextContiguous = 0;
      for (let j = 0; j < cs / 8; j++) {
        const ehi = u32(t, 8 * j);
        const elo = u32(t, 8 * j + 4);
        if (ehi & ENTRY_COMPRESSED_HI) {
          const { offset: coff, sectors } = compressedDescriptor(ehi, elo, h.clusterBits);
          if (ehi & ENTRY_COPIED_HI) {
            r.messages.push(`ERROR: coffset=0x${coff.toString(16)}: copied flag must never be set for compressed clusters`);
            r.corruptions++;
          }
          incRange(coff, sectors * 512 - (coff % 512));
          if (active) {
            r.allocatedClusters++;
            r.compressedClusters++;
            r.fragmentedClusters++;
          }
          continue;
        }
        // L2E_STD_RESERVED_MASK (bits 1-8 and 56-61), whatever the entry maps.
        if ((ehi & 0x3f000000) !== 0 || (elo & 0x1fe) !== 0) {
          r.messages.push(`ERROR found l2 entry with reserved bits set: ${hex64(ehi, elo)}`);
          r.corruptions++;
        }
        const host = entryOffset(ehi, elo);
        if (host === 0) continue; // unallocated, or zero without a preallocated cluster
        if (host % cs !== 0) {
          r.corruptions++;
          r.messages.push(
            elo & ENTRY_ZERO_LO
              ? `ERROR offset=${host.toString(16)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`
              : `ERROR offset=${host.toString(16)}: Data cluster is not properly aligned; L2 entry corrupted.`,
          );
        }
        if (active) {
          r.allocatedClusters++;
          if (nextContiguous && host !== nextContiguous) r.fragmentedClusters++;
          nextContiguous = host + cs;
          copiedChecks.push({ kind: "l2", index: j, hi: ehi, lo: elo, host, where: l2off + 8 * j });
        }
        incRange(host, cs);
      }
    }
  };

  incRange(0, cs);
  await walkL1(h.l1TableOffset, h.l1Size, true);
  // Internal snapshots: the table, then each snapshot's L1 and what it maps.
  if (h.nbSnapshots > 0) {
    const tbl = await d.pool.pread(d.fd, h.snapshotsOffset, Math.min(64 * 1024 * 1024, h.nbSnapshots * 1024 + 65536));
    let off = 0;
    for (let s = 0; s < h.nbSnapshots && off + 40 <= tbl.length; s++) {
      const l1o = u64(tbl, off);
      const l1s = u32(tbl, off + 8);
      const idLen = (tbl[off + 12] << 8) | tbl[off + 13];
      const nameLen = (tbl[off + 14] << 8) | tbl[off + 15];
      const extra = u32(tbl, off + 36);
      const text = (at: number, len: number): string => Buffer.from(tbl.subarray(at, at + len)).toString("latin1");
      const idStr = text(off + 40 + extra, idLen);
      const name = text(off + 40 + extra + idLen, nameLen);
      // calculate_refcounts refuses a snapshot's L1 that is misaligned or too large.
      if (l1o % cs !== 0 || !Number.isFinite(l1o)) {
        r.messages.push(`ERROR snapshot ${idStr} (${name}) l1_offset=0x${l1o.toString(16)}: L1 table is not cluster aligned; snapshot table entry corrupted`);
        r.corruptions++;
      } else if (l1s > QCOW_MAX_L1_SIZE / 8) {
        r.messages.push(`ERROR snapshot ${idStr} (${name}) l1_size=0x${l1s.toString(16)}: L1 table is too large; snapshot table entry corrupted`);
        r.corruptions++;
      } else {
        await walkL1(l1o, l1s, false);
      }
      off += (40 + extra + idLen + nameLen + 7) & ~7;
    }
    incRange(h.snapshotsOffset, off);
  }
  // The refcount structures themselves.
  incRange(d.refs.tableOffset, d.refs.tableClusters * cs);
  // The table as on disk, for the reserved bits (REFT_RESERVED_MASK, bits 0-8) and exact hex.
  const rawTable = await d.pool.pread(d.fd, d.refs.tableOffset, d.refs.table.length * 8);
  /**
   * Table indexes whose refblock QEMU's qcow2_get_refcount cannot read: an unaligned offset
   * (signalled as corruption, the offset in hex) or one at or past 2^63 (the read fails: null).
   */
  const badBlock = new Map<number, string | null>();
  for (let i = 0; i < d.refs.table.length; i++) {
    const rhi = u32(rawTable, 8 * i);
    const rlo = u32(rawTable, 8 * i + 4);
    const masked = (BigInt(rhi) << 32n) | BigInt((rlo & 0xfffffe00) >>> 0);
    if (masked % BigInt(cs) !== 0n) badBlock.set(i, masked.toString(16));
    else if (masked >= 1n << 63n) badBlock.set(i, null);
    const off = d.refs.table[i];
    if (rlo & 0x1ff) {
      r.messages.push(`ERROR refcount table entry ${i} has reserved bits set`);
      r.corruptions++;
      rebuild = true;
      continue;
    }
    if (masked === 0n) continue;
    // REFT_OFFSET_MASK keeps all 55 high bits: alignment is decided by the low word alone.
    if (((rlo & 0xfffffe00) >>> 0) % cs !== 0) {
      r.messages.push(`ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`);
      r.corruptions++;
      rebuild = true;
      continue;
    }
    if (!(off / cs < nbClusters)) {
      r.messages.push(`ERROR refcount block ${i} is outside image`);
      r.corruptions++;
      rebuild = true;
      continue;
    }
    refs.inc(off / cs);
  }

  // Compare (QEMU's compare_refcounts).
  const perBlock = d.refs.perBlock;
  const limit = Math.max(nbClusters, refs.top);
  let highest = 0;
  const fixes: Array<{ cluster: number; delta: number; leak: boolean }> = [];
  const repairMsgs: string[] = [];
  let signalled = false;
  for (let c = 0; c < limit; c++) {
    const want = refs.get(c);
    const ti = Math.floor(c / perBlock);
    const bad = badBlock.get(ti);
    if (bad !== undefined) {
      // qcow2_get_refcount fails with EIO after qcow2_signal_corruption (once, read-only:
      // "Image is corrupt"); compare_refcounts counts a check error per cluster it visits.
      if (c >= nbClusters) continue;
      if (!signalled && bad !== null) r.messages.push(`qcow2: Image is corrupt: Refblock offset 0x${bad} unaligned (reftable index: ${ti === 0 ? "0" : "0x" + ti.toString(16)}); further non-fatal corruption events will be suppressed`);
      if (bad !== null) signalled = true;
      r.messages.push(`Can't get refcount for cluster ${c}: Input/output error`);
      r.checkErrors++;
      continue;
    }
    let have = 0;
    if (ti < d.refs.table.length && d.refs.table[ti] !== 0 && d.refs.table[ti] % cs === 0 && d.refs.table[ti] / cs < nbClusters) {
      try {
        have = await d.refs.get(c);
      } catch {
        have = 0;
      }
    } else if (c % perBlock !== 0 && want === 0) {
      c = (ti + 1) * perBlock - 1; // an absent refblock: nothing to compare in its range but references
      continue;
    }
    if (have > 0 || want > 0) highest = c;
    if (have === want) continue;
    // QEMU compares once without fixing (ERROR/Leaked lines), then again fixing (Repairing).
    if (!afterRebuild) r.messages.push(`${have < want ? "ERROR" : "Leaked"} cluster ${c} refcount=${have} reference=${want}`);
    if (have === 0) rebuild = true;
    else if ((have > want && repair) || (have < want && repair === "all")) {
      fixes.push({ cluster: c, delta: want - have, leak: have > want });
      repairMsgs.push(`Repairing cluster ${c} refcount=${have} reference=${want}`);
      continue;
    }
    if (have < want) r.corruptions++;
    else r.leaks++;
  }
  if (!(repair === "all" && rebuild)) r.messages.push(...repairMsgs);

  const wasLazy = d.refs.lazy;
  d.refs.lazy = false;
  try {
    if (repair === "all" && rebuild) {
      await rebuildRefcounts(d, refs, r, fileSize);
      for (const f of fixes) {
        if (f.leak) r.leaksFixed++;
        else r.corruptionsFixed++;
      }
      fixes.length = 0;
      // Free what the rebuild left counted but unused (the old structures), as QEMU does.
      const again = await checkOnce(d, "leaks", true);
      r.messages.push(...again.messages);
    }
    for (const f of fixes) {
      await d.refs.update(f.cluster, 1, f.delta);
      if (f.leak) r.leaksFixed++;
      else r.corruptionsFixed++;
    }
    await d.refs.settle();
  } finally {
    d.refs.lazy = wasLazy;
  }

  // OFLAG_COPIED must be set exactly when the refcount is 1 (check_oflag_copied).
  for (const e of copiedChecks) {
    // Like check_oflag_copied: the refcount on disk (after any repair above), not the computed one.
    if (badBlock.has(Math.floor(e.host / cs / perBlock))) continue; // check_oflag_copied skips what it cannot read
    let rc = 0;
    try {
      rc = await d.refs.get(Math.floor(e.host / cs));
    } catch {
      rc = 0;
    }
    const copied = (e.hi & ENTRY_COPIED_HI) !== 0;
    if ((rc === 1) === copied) continue;
    const entry = (e.hi * 0x100000000 + e.lo).toString(16);
    const fix = repair === "all";
    r.messages.push(`${fix ? "Repairing" : "ERROR"} OFLAG_COPIED ${e.kind === "l1" ? `L2 cluster: l1_index=${e.index} l1_entry=${entry}` : `data cluster: l2_entry=${entry}`} refcount=${rc}`);
    if (!fix) {
      r.corruptions++;
      continue;
    }
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, rc === 1 ? (e.hi | ENTRY_COPIED_HI) >>> 0 : e.hi & ~ENTRY_COPIED_HI);
    new DataView(b.buffer).setUint32(4, e.lo);
    await d.pool.pwrite(d.fd, e.where, b);
    if (e.kind === "l1") d.l1.set(b, 8 * e.index);
    r.corruptionsFixed++;
  }
  d.dropCaches();
  r.imageEndOffset = (highest + 1) * cs;
  return r;
}

/**
 * Writes a new refcount table and refblocks describing exactly `refs` plus themselves, then
 * switches the header to them (QEMU's rebuild_refcount_structure): refblocks go into the first
 * free clusters, the table after everything in use. The old structures are still counted in
 * `refs`; the leak pass that follows frees them.
 */
async function rebuildRefcounts(d: Qcow2Driver, refs: Counts, r: CheckResult, fileSize: number): Promise<void> {
  const cs = d.cs;
  const perBlock = d.refs.perBlock;
  const order = d.header.refcountOrder;
  let cursor = 0;
  const firstFree = (): number => {
    while (refs.get(cursor) !== 0) cursor++;
    return cursor;
  };
  const blockAt = new Map<number, number>();
  const placeBlocks = (): void => {
    for (let changed = true; changed; ) {
      changed = false;
      for (let ti = 0; ti * perBlock < refs.top; ti++) {
        if (blockAt.has(ti)) continue;
        let any = false;
        for (let c = ti * perBlock; c < Math.min(refs.top, (ti + 1) * perBlock); c++) {
          if (refs.get(c)) {
            any = true;
            break;
          }
        }
        if (!any) continue;
        const c = firstFree();
        refs.inc(c);
        blockAt.set(ti, c);
        changed = true;
      }
    }
  };
  placeBlocks();
  let tableAt = refs.top;
  let k = 1;
  for (;;) {
    for (let c = tableAt; c < tableAt + k; c++) refs.inc(c);
    placeBlocks();
    const need = Math.ceil((Math.max(...blockAt.keys()) + 1) * 8 / cs);
    if (need <= k) break;
    for (let c = tableAt; c < tableAt + k; c++) refs.a[c]--;
    k = need;
    tableAt = refs.top;
  }
  const table = new Uint8Array(k * cs);
  for (const [ti, c] of blockAt) {
    const b = new Uint8Array(cs);
    for (let x = ti * perBlock; x < Math.min(refs.top, (ti + 1) * perBlock); x++) {
      const v = refs.get(x);
      if (v) setRefcount(b, x % perBlock, order, v);
    }
    await d.pool.pwrite(d.fd, c * cs, b);
    putU64(table, 8 * ti, c * cs);
  }
  await d.pool.pwrite(d.fd, tableAt * cs, table);
  await d.pool.fdatasync(d.fd);
  const hdr = new Uint8Array(12);
  putU64(hdr, 0, tableAt * cs);
  new DataView(hdr.buffer).setUint32(8, k);
  await d.pool.pwrite(d.fd, 48, hdr);
  await d.pool.fdatasync(d.fd);
  d.header.refcountTableOffset = tableAt * cs;
  d.header.refcountTableClusters = k;
  // Appends continue past everything in the file, referenced or not: fresh clusters must read
  // as zeros, which only never-written space guarantees.
  d.adoptRefcountTable(table, tableAt * cs, k, Math.max(refs.top, Math.ceil(fileSize / cs)));
  r.corruptionsFixed += r.corruptions;
  r.leaksFixed += r.leaks;
  r.corruptions = 0;
  r.leaks = 0;
  r.messages.push("Rebuilding refcount structure");
}
