// BlockBackend: the device-facing side of one drive (QEMU's block/block-backend.c). Devices
// submit requests here; each is validated, accounted (BlockAcctStats) and passed to the
// driver at the top of the image chain. Latency is measured from submission to completion.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BlockAcctStats, BlockAcctType, nowNs } from "./accounting.js";
import { createImage } from "./create.js";
import type { BlockDriver } from "./driver.js";
import { openImage } from "./image.js";
import { QmpError, genericError } from "../qmp/errors.js";
import type { IoPool } from "./io-pool.js";
import { BlockGraph, type BlockNode } from "./node.js";
import { parseLockingMode, type LockingMode } from "./lock.js";

/** `--drive file=...,format=...,id=...,readonly=on,snapshot=on`, already split into fields. */
export interface DriveOptions {
  file: string;
  format?: "raw" | "qcow2";
  id: string;
  readonly?: boolean;
  snapshot?: boolean;
  /** `backing: null` from blockdev-add: open the image with no backing file at all. */
  backing?: string | null;
  nodeName?: string;
  pool: IoPool;
  /** The machine's node graph; a private one when absent (tests, tools). */
  graph?: BlockGraph;
  /** The device's QOM path, for query-block/query-blockstats `qdev`. */
  qdev?: string;
  /** stats-intervals (seconds) for timed statistics. */
  statsIntervals?: number[];
  /** `file.locking=on|off|auto`: QEMU's image locks on the file (lock.ts). */
  locking?: LockingMode;
  /** A migration destination: open without locks until BlockLayer.activateAll. */
  inactive?: boolean;
}

/** QemuOpts syntax: `k=v,k2=v2`, a doubled comma is a literal comma, a bare key means "on". */
export function splitKeyValues(spec: string): Map<string, string> {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] !== ",") cur += spec[i];
    else if (spec[i + 1] === ",") {
      cur += ",";
      i++;
    } else {
      parts.push(cur);
      cur = "";
    }
  }
  parts.push(cur);
  const m = new Map<string, string>();
  for (const p of parts) {
    if (!p) continue;
    const eq = p.indexOf("=");
    m.set(eq < 0 ? p : p.slice(0, eq), eq < 0 ? "on" : p.slice(eq + 1));
  }
  return m;
}

/**
 * Splits QEMU's `--drive` syntax (`file=disk.qcow2,format=qcow2,if=virtio,id=d0,readonly=on,
 * snapshot=on`; doubled commas escape a comma in a value). `id` defaults to QEMU's name for
 * the n-th virtio drive, `virtio<n>`.
 */
export function parseDrive(spec: string, index = 0): Omit<DriveOptions, "pool"> & { if: string } {
  const fields = splitKeyValues(spec);
  const bool = (k: string): boolean | undefined => {
    const v = fields.get(k);
    if (v === undefined) return undefined;
    if (v === "on" || v === "true" || v === "yes") return true;
    if (v === "off" || v === "false" || v === "no") return false;
    throw new Error(`Parameter '${k}' expects 'on' or 'off'`);
  };
  const known = new Set(["file", "format", "if", "id", "readonly", "snapshot", "cache", "media", "node-name", "file.locking"]);
  // QEMU's list syntax: stats-intervals.0=60,stats-intervals.1=3600 (seconds).
  const statsIntervals: number[] = [];
  for (const [k, v] of fields) {
    const m = /^stats-intervals\.(\d+)$/.exec(k);
    if (m === null) continue;
    const secs = Number(v);
    if (!Number.isInteger(secs) || secs <= 0) throw new Error(`Invalid interval length: ${v}`);
    statsIntervals[Number(m[1])] = secs;
  }
  for (const k of fields.keys()) if (!known.has(k) && !/^stats-intervals\.\d+$/.test(k)) throw new Error(`Invalid parameter '${k}'`);
  const file = fields.get("file");
  if (!file) throw new Error("Parameter 'file' is missing");
  const format = fields.get("format");
  if (format !== undefined && format !== "raw" && format !== "qcow2") throw new Error(`'${format}' invalid format`);
  const iface = fields.get("if") ?? "virtio";
  if (iface !== "virtio" && iface !== "none") throw new Error(`Invalid parameter 'if': minivm has virtio only`);
  return { file, format, if: iface, id: fields.get("id") ?? `${iface}${index}`, readonly: bool("readonly"), snapshot: bool("snapshot"), nodeName: fields.get("node-name"), ...(fields.has("file.locking") ? { locking: parseLockingMode(fields.get("file.locking")) } : {}), ...(statsIntervals.length > 0 ? { statsIntervals: statsIntervals.filter((x) => x !== undefined) } : {}) };
}

/** Thrown for a request the backend rejects before submission (counted as invalid). */
export class InvalidRequestError extends Error {}

export class BlockBackend {
  readonly stats = new BlockAcctStats();
  /** The node this backend is attached to (blk_bs): the top of the image chain. */
  readonly root: BlockNode;
  /** What query-block reports as `qdev`: the device's id, or its QOM path without one. */
  qdev: string | undefined;
  /** The attached device's QOM path (/machine/peripheral/ID or /machine/peripheral-anon/...). */
  qomPath: string | undefined;
  /** The device's side of the backend (QEMU's BlockDevOps): told when the disk changes size. */
  devOps: { resized(): void } | null = null;
  /** Highest byte offset written + 1 (bs->wr_highest_offset). */
  wrHighestOffset = 0;
  /** Requests submitted and not completed. */
  inFlight = 0;
  /**
   * Optional completion hook for the trace ring / dashboard (DESIGN §7): operation, byte range,
   * submission stamp (nowNs) and outcome. Null costs one comparison per request.
   */
  trace: ((type: BlockAcctType, offset: number, bytes: number, startNs: number, ok: boolean) => void) | null = null;
  /** Temporary overlay for snapshot=on, deleted on close. */
  private tempDir: string | null = null;

  /**
   * Attaches a new backend to `opts.root`, or registers `drv`'s chain in `opts.graph` (a
   * private graph when absent) and attaches to its top node.
   */
  constructor(
    readonly id: string,
    drv: BlockDriver,
    opts: { nodeName?: string; graph?: BlockGraph; root?: BlockNode; qdev?: string; statsIntervals?: number[] } = {},
  ) {
    this.root = opts.root ?? (opts.graph ?? new BlockGraph()).addChain(drv, { nodeName: opts.nodeName, readOnly: drv.readOnly });
    if (this.root.backend !== null) throw new Error(`node '${this.root.nodeName}' already has a backend`);
    this.root.backend = this;
    this.qdev = opts.qdev;
    for (const s of opts.statsIntervals ?? []) this.stats.addInterval(s);
  }

  get drv(): BlockDriver {
    return this.root.drv;
  }
  get nodeName(): string {
    return this.root.nodeName;
  }

  /** Opens the drive as `--drive` describes it. snapshot=on writes go to a temporary qcow2 overlay. */
  static async open(o: DriveOptions): Promise<BlockBackend> {
    let drv: BlockDriver;
    let tempDir: string | null = null;
    if (o.snapshot) {
      // Only the format is wanted here: QEMU probes without taking the image's permissions.
      const base = await openImage(o.file, { pool: o.pool, format: o.format, readOnly: true, backing: o.backing, forceShare: true });
      const fmt = base.format;
      await base.close();
      tempDir = await mkdtemp(join(tmpdir(), "minivm-snapshot-"));
      const overlay = join(tempDir, "overlay.qcow2");
      try {
        await createImage({ filename: overlay, format: "qcow2", pool: o.pool, backingFile: resolve(o.file), backingFormat: fmt });
        drv = await openImage(overlay, { pool: o.pool, format: "qcow2", readOnly: false, inactive: o.inactive });
      } catch (e) {
        await rm(tempDir, { recursive: true, force: true });
        throw e;
      }
    } else {
      drv = await openImage(o.file, { pool: o.pool, format: o.format, readOnly: o.readonly ?? false, backing: o.backing, locking: o.locking, inactive: o.inactive });
    }
    let b: BlockBackend;
    try {
      b = new BlockBackend(o.id, drv, { nodeName: o.nodeName, graph: o.graph, qdev: o.qdev, statsIntervals: o.statsIntervals });
    } catch (e) {
      await drv.close().catch(() => undefined);
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      throw e;
    }
    b.tempDir = tempDir;
    b.snapshotOf = o.snapshot ? o.file : null;
    return b;
  }

  /** The file the user named when snapshot=on hides it behind an overlay. */
  snapshotOf: string | null = null;

  get size(): number {
    return this.drv.size;
  }
  get readOnly(): boolean {
    return this.drv.readOnly;
  }

  private inRange(offset: number, bytes: number): boolean {
    return Number.isSafeInteger(offset) && Number.isSafeInteger(bytes) && offset >= 0 && bytes >= 0 && offset + bytes <= this.drv.size;
  }

  /**
   * `startNs` is the submission time; a device that submits several requests at once (one
   * virtqueue kick) passes one stamp for all, so each request costs one clock read, not two.
   */
  async read(offset: number, length: number, startNs?: number): Promise<Uint8Array> {
    if (!this.inRange(offset, length)) {
      this.stats.invalid(BlockAcctType.READ);
      throw new InvalidRequestError(`read [${offset}, +${length}) outside the ${this.drv.size}-byte disk`);
    }
    const t0 = startNs ?? nowNs();
    this.inFlight++;
    try {
      const r = await this.drv.read(offset, length);
      this.stats.done(BlockAcctType.READ, length, t0);
      if (this.trace) this.trace(BlockAcctType.READ, offset, length, t0, true);
      return r;
    } catch (e) {
      this.stats.failed(BlockAcctType.READ, t0);
      if (this.trace) this.trace(BlockAcctType.READ, offset, length, t0, false);
      throw e;
    } finally {
      this.inFlight--;
    }
  }

  async write(offset: number, data: Uint8Array, startNs?: number): Promise<void> {
    if (!this.inRange(offset, data.length)) {
      this.stats.invalid(BlockAcctType.WRITE);
      throw new InvalidRequestError(`write [${offset}, +${data.length}) outside the ${this.drv.size}-byte disk`);
    }
    return this.accountWrite(offset, data.length, () => this.drv.write(offset, data), startNs);
  }

  /**
   * Several contiguous guest reads merged into one (virtio-blk's multireq): one driver read,
   * each request accounted as its own operation, and n-1 counted as merged.
   */
  async readMerged(offset: number, lengths: readonly number[], startNs?: number): Promise<Uint8Array> {
    const total = lengths.reduce((a, b) => a + b, 0);
    if (!this.inRange(offset, total)) {
      for (let i = 0; i < lengths.length; i++) this.stats.invalid(BlockAcctType.READ);
      throw new InvalidRequestError(`read [${offset}, +${total}) outside the ${this.drv.size}-byte disk`);
    }
    const t0 = startNs ?? nowNs();
    this.stats.mergeDone(BlockAcctType.READ, lengths.length - 1);
    this.inFlight++;
    try {
      const r = await this.drv.read(offset, total);
      for (const n of lengths) this.stats.done(BlockAcctType.READ, n, t0);
      if (this.trace) this.trace(BlockAcctType.READ, offset, total, t0, true);
      return r;
    } catch (e) {
      for (let i = 0; i < lengths.length; i++) this.stats.failed(BlockAcctType.READ, t0);
      if (this.trace) this.trace(BlockAcctType.READ, offset, total, t0, false);
      throw e;
    } finally {
      this.inFlight--;
    }
  }

  /** Contiguous guest writes merged into one driver write (see readMerged). */
  async writeMerged(offset: number, parts: readonly Uint8Array[], startNs?: number): Promise<void> {
    const total = parts.reduce((a, b) => a + b.length, 0);
    if (!this.inRange(offset, total)) {
      for (let i = 0; i < parts.length; i++) this.stats.invalid(BlockAcctType.WRITE);
      throw new InvalidRequestError(`write [${offset}, +${total}) outside the ${this.drv.size}-byte disk`);
    }
    const data = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    const t0 = startNs ?? nowNs();
    this.stats.mergeDone(BlockAcctType.WRITE, parts.length - 1);
    this.inFlight++;
    try {
      await this.drv.write(offset, data);
      if (offset + total > this.wrHighestOffset) this.wrHighestOffset = offset + total;
      for (const p of parts) this.stats.done(BlockAcctType.WRITE, p.length, t0);
      if (this.trace) this.trace(BlockAcctType.WRITE, offset, total, t0, true);
    } catch (e) {
      for (let i = 0; i < parts.length; i++) this.stats.failed(BlockAcctType.WRITE, t0);
      if (this.trace) this.trace(BlockAcctType.WRITE, offset, total, t0, false);
      throw e;
    } finally {
      this.inFlight--;
    }
  }

  /** Accounted as a write, as virtio-blk does for WRITE_ZEROES. */
  async writeZeroes(offset: number, length: number, mayUnmap: boolean, startNs?: number): Promise<void> {
    if (!this.inRange(offset, length)) {
      this.stats.invalid(BlockAcctType.WRITE);
      throw new InvalidRequestError(`write-zeroes [${offset}, +${length}) outside the disk`);
    }
    return this.accountWrite(offset, length, () => this.drv.writeZeroes(offset, length, mayUnmap), startNs);
  }

  private async accountWrite(offset: number, length: number, op: () => Promise<void>, startNs?: number): Promise<void> {
    const t0 = startNs ?? nowNs();
    this.inFlight++;
    try {
      await op();
      if (offset + length > this.wrHighestOffset) this.wrHighestOffset = offset + length;
      this.stats.done(BlockAcctType.WRITE, length, t0);
      if (this.trace) this.trace(BlockAcctType.WRITE, offset, length, t0, true);
    } catch (e) {
      this.stats.failed(BlockAcctType.WRITE, t0);
      if (this.trace) this.trace(BlockAcctType.WRITE, offset, length, t0, false);
      throw e;
    } finally {
      this.inFlight--;
    }
  }

  /** Discard. `account` is false for virtio-blk, which does not account DISCARD in QEMU 7.2. */
  async discard(offset: number, length: number, account = true, startNs?: number): Promise<void> {
    if (!this.inRange(offset, length)) {
      if (account) this.stats.invalid(BlockAcctType.UNMAP);
      throw new InvalidRequestError(`discard [${offset}, +${length}) outside the disk`);
    }
    const t0 = startNs ?? nowNs();
    this.inFlight++;
    try {
      await this.drv.discard(offset, length);
      if (account) this.stats.done(BlockAcctType.UNMAP, length, t0);
    } catch (e) {
      if (account) this.stats.failed(BlockAcctType.UNMAP, t0);
      throw e;
    } finally {
      this.inFlight--;
    }
  }

  async flush(startNs?: number): Promise<void> {
    const t0 = startNs ?? nowNs();
    this.inFlight++;
    try {
      await this.drv.flush();
      this.stats.done(BlockAcctType.FLUSH, 0, t0);
      if (this.trace) this.trace(BlockAcctType.FLUSH, 0, 0, t0, true);
    } catch (e) {
      this.stats.failed(BlockAcctType.FLUSH, t0);
      if (this.trace) this.trace(BlockAcctType.FLUSH, 0, 0, t0, false);
      throw e;
    } finally {
      this.inFlight--;
    }
  }

  /** block_resize: grow (or, for raw, shrink) the disk; the device should then report the new size. */
  async resize(size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw genericError("Parameter 'size' expects a non-negative number below 2^63");
    if (this.readOnly) throw genericError("Block node is read-only");
    const d = this.drv as BlockDriver & { truncate?: (n: number) => Promise<void> };
    if (!d.truncate) throw genericError(`Image format '${d.format}' does not support resizing`);
    try {
      await d.truncate(size);
    } catch (e) {
      throw e instanceof QmpError ? e : genericError(e instanceof Error ? e.message : String(e));
    }
  }

  async close(): Promise<void> {
    await this.drv.close();
    if (this.tempDir) await rm(this.tempDir, { recursive: true, force: true });
  }
}
