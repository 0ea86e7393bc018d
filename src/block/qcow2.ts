// The qcow2 driver (docs/interop/qcow2.txt; QEMU block/qcow2.c and qcow2-cluster.c):
// two-level cluster mapping with copy-on-write from the backing image, v3 zero clusters,
// compressed clusters on read, refcounts kept exact. Metadata caches are write-through and
// every metadata write is ordered after what it points to, so a kill -9 can only leak.

import type { FileHandle } from "node:fs/promises";
import { checkRange, type BlockDriver, type BlockExtent, type Qcow2Specific } from "./driver.js";
import type { IoPool } from "./io-pool.js";
import type { ImageLock } from "./lock.js";
import {
  COMPAT_LAZY_REFCOUNTS,
  ENTRY_COMPRESSED_HI,
  ENTRY_COPIED_HI,
  ENTRY_ZERO_LO,
  entryOffset,
  ImageOpenError,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  INCOMPAT_SUPPORTED,
  AUTOCLEAR_SUPPORTED,
  AUTOCLEAR_DATA_FILE_RAW,
  compressedDescriptor,
  parseExtensions,
  parseHeader,
  putFeatureWord,
  putU32,
  putU64,
  readSnapshots,
  unsupportedFeatures,
  validateTables,
  type Qcow2Extensions,
  type Qcow2Header,
  type Qcow2Snapshot,
} from "./qcow2-format.js";
import { Refcounts, type RefcountHost } from "./qcow2-refcount.js";

/** What one guest cluster maps to (QEMU's QCow2ClusterType). */
export const enum Kind {
  Unallocated,
  ZeroPlain,
  ZeroAlloc,
  Normal,
  Compressed,
}

export interface Mapping {
  kind: Kind;
  /** Host offset (Normal, ZeroAlloc) or compressed data offset. */
  host: number;
  /** Compressed: bytes to read at `host`. */
  csize: number;
  copied: boolean;
}

/** An allocation whose data write runs outside the lock. */
interface PendingAlloc {
  host: number;
  buf: Uint8Array;
  /** Where `buf` goes inside the cluster (non-zero when the rest is left as zeros). */
  at: number;
  table: Uint8Array;
  l2off: number;
  old: Mapping;
  finish: () => void;
}

/** A small mutex: allocations and metadata updates run one at a time. */
class AsyncMutex {
  private tail: Promise<void> = Promise.resolve();
  locked = 0;
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(() => {
      this.locked++;
      return fn();
    });
    this.tail = p.then(
      () => void this.locked--,
      () => void this.locked--,
    );
    return p;
  }
}

const L2_CACHE_MAX_BYTES = 32 * 1024 * 1024;

export interface Qcow2Options {
  readOnly: boolean;
  /** Open for `check`: skip the dirty-image repair and tolerate a corrupt bit. */
  forCheck?: boolean;
  /** Receives qcow2_signal_corruption's line; QEMU writes it to stderr, so does the default. */
  onCorruption?: (message: string) => void;
}

export class Qcow2Driver implements BlockDriver {
  readonly format = "qcow2";
  readonly clusterSize: number;
  readonly fd: number;
  readonly cs: number;
  readonly l2Entries: number;
  refs: Refcounts;
  private readonly refHost: RefcountHost;
  backing: BlockDriver | null = null;
  /** Internal snapshots, read-only here (minivm neither takes nor applies them). */
  snapshots: Qcow2Snapshot[] = [];
  readonly backingFilename: string | undefined;
  readonly backingFormat: string | undefined;
  l1: Uint8Array;
  corrupt: boolean;
  /** Set on a fatal corruption: every later request fails (QEMU sets bs->drv = NULL). */
  private dead: string | null = null;
  private readonly l2Cache = new Map<number, Uint8Array>();
  /** Offsets of every L2 table the active L1 points to (for overlap checks). */
  private readonly l2Offsets = new Set<number>();
  private readonly l2Loading = new Map<number, Promise<Uint8Array>>();
  private readonly lock = new AsyncMutex();
  private lazyDirtySet = false;
  /** QEMU's image locks on the file; released with the fd on close (lock.ts). */
  imageLock: ImageLock | null = null;
  /**
   * BDRV_O_INACTIVE: another process owns the image's metadata (a migration destination
   * before it starts, a source after switchover), so nothing here writes it, not even close.
   */
  private inactive = false;

  private constructor(
    readonly filename: string,
    private readonly fh: FileHandle,
    readonly pool: IoPool,
    public readOnly: boolean,
    readonly header: Qcow2Header,
    readonly ext: Qcow2Extensions,
    backingName: string | undefined,
    l1: Uint8Array,
    reftable: Uint8Array,
  ) {
    this.fd = fh.fd;
    this.cs = 2 ** header.clusterBits;
    this.clusterSize = this.cs;
    this.l2Entries = this.cs / 8;
    this.l1 = l1;
    this.backingFilename = backingName;
    this.backingFormat = ext.backingFormat;
    this.corrupt = (header.incompatible & INCOMPAT_CORRUPT) !== 0;
    this.refHost = {
      pool,
      fd: this.fd,
      clusterBits: header.clusterBits,
      refcountOrder: header.refcountOrder,
      setReftable: (o, c) => this.setReftable(o, c),
      checkRefblockWrite: (o) => this.checkOverlap(o, "refcount block"),
    };
    this.refs = new Refcounts(
      this.refHost,
      reftable,
      header.refcountTableOffset,
      header.refcountTableClusters,
    );
    this.refs.lazy = header.version === 3 && (header.compatible & COMPAT_LAZY_REFCOUNTS) !== 0;
    for (let i = 0; i < header.l1Size; i++) {
      const e = this.l1Entry(i);
      if (e.off) this.l2Offsets.add(e.off);
    }
  }

  /** Whole sectors only, as QEMU's bs->total_sectors = header.size / 512. */
  get size(): number {
    return this.header.size - (this.header.size % 512);
  }

  /** Opens and validates; the caller attaches the backing image afterwards. */
  static async open(filename: string, fh: FileHandle, pool: IoPool, opts: Qcow2Options): Promise<Qcow2Driver> {
    const first = await pool.pread(fh.fd, 0, 4096);
    const h = parseHeader(first);
    const cs = 2 ** h.clusterBits;
    const cluster0 = cs <= 4096 ? first.subarray(0, cs) : await pool.pread(fh.fd, 0, cs);
    const unknownLo = (h.incompatible & ~INCOMPAT_SUPPORTED) >>> 0;
    if (unknownLo || h.incompatibleHigh) throw new ImageOpenError(unsupportedFeatures(unknownLo, parseExtensionsSafe(cluster0, h), h.incompatibleHigh));
    if (h.incompatible & INCOMPAT_CORRUPT && !opts.readOnly && !opts.forCheck) throw new ImageOpenError("qcow2: Image is corrupt; cannot be opened read/write");
    if (h.compressionType !== 0) throw new ImageOpenError(`qcow2: unknown compression type: ${h.compressionType}`);
    if (h.cryptMethod !== 0) throw new ImageOpenError(h.cryptMethod > 2 ? `Unsupported encryption method ${h.cryptMethod}` : "Encrypted qcow2 images are not supported by minivm");
    if (opts.forCheck === true) widenForCheck(h, first, cs);
    validateTables(h, opts.forCheck === true);
    const ext = parseExtensions(cluster0, h);
    if (ext.hasDataFile) throw new ImageOpenError("'data-file' is required for this image");
    // Autoclear bit 1 (raw external data) means nothing without an external data file.
    if (h.autoclear & AUTOCLEAR_DATA_FILE_RAW) throw new ImageOpenError("data-file-raw requires a data file");
    let backingName: string | undefined;
    if (h.backingFileOffset !== 0) {
      const len = h.backingFileSize;
      if (len > Math.min(1023, cs - h.backingFileOffset)) throw new ImageOpenError("Backing file name too long");
      backingName = new TextDecoder().decode(cluster0.subarray(h.backingFileOffset, h.backingFileOffset + len));
    }
    if (!opts.readOnly && h.nbSnapshots > 0) throw new ImageOpenError("minivm cannot write to qcow2 images with internal snapshots; open it read-only");
    // A check reads the snapshot table itself and reports what is wrong with it.
    const snapshots = h.nbSnapshots > 0 && opts.forCheck !== true ? await readSnapshots((o, n) => pool.pread(fh.fd, o, n), h.snapshotsOffset, h.nbSnapshots) : [];
    const l1 = await pool.pread(fh.fd, h.l1TableOffset, h.l1Size * 8);
    const reftable = await pool.pread(fh.fd, h.refcountTableOffset, h.refcountTableClusters * cs);
    const d = new Qcow2Driver(filename, fh, pool, opts.readOnly, h, ext, backingName, l1, reftable);
    d.snapshots = snapshots;
    if (opts.onCorruption) d.onCorruption = opts.onCorruption;
    if (!opts.readOnly) {
      const st = await fh.stat();
      await d.refs.computeNextFree(st.size);
      // Unknown autoclear bits: clear them before the first write (qcow2.txt "autoclear").
      if (h.autoclear & ~AUTOCLEAR_SUPPORTED || h.autoclearHigh) {
        h.autoclear = (h.autoclear & AUTOCLEAR_SUPPORTED) >>> 0;
        h.autoclearHigh = 0;
        await d.writeFeatureWords();
      }
    }
    return d;
  }

  // --- mapping --------------------------------------------------------------------

  l1Entry(i: number): { off: number; copied: boolean; hi: number; lo: number } {
    const dv = new DataView(this.l1.buffer, this.l1.byteOffset, this.l1.byteLength);
    const hi = dv.getUint32(8 * i);
    const lo = dv.getUint32(8 * i + 4);
    return { off: entryOffset(hi, lo), copied: (hi & ENTRY_COPIED_HI) !== 0, hi, lo };
  }

  async l2Table(off: number): Promise<Uint8Array> {
    const hit = this.l2Cache.get(off);
    if (hit) return hit;
    let p = this.l2Loading.get(off);
    if (!p) {
      p = this.pool.pread(this.fd, off, this.cs);
      this.l2Loading.set(off, p);
      // A failed read must not stay cached: the next lookup tries again.
      p.catch(() => this.l2Loading.delete(off));
    }
    const t = await p;
    this.l2Loading.delete(off);
    const again = this.l2Cache.get(off);
    if (again) return again;
    if (this.l2Cache.size * this.cs >= L2_CACHE_MAX_BYTES && this.lock.locked === 0) {
      for (const k of this.l2Cache.keys()) if (!this.dirtyL2.has(k)) this.l2Cache.delete(k);
    }
    this.l2Cache.set(off, t);
    return t;
  }

  /** The common case without awaiting: a cached L2 table and a well-formed entry; else null. */
  mapSync(c: number): Mapping | null {
    const l1i = Math.floor(c / this.l2Entries);
    const dv1 = new DataView(this.l1.buffer, this.l1.byteOffset, this.l1.byteLength);
    const hi1 = dv1.getUint32(8 * l1i);
    const off1 = entryOffset(hi1, dv1.getUint32(8 * l1i + 4));
    if (off1 === 0 || off1 % this.cs !== 0) return null;
    const t = this.l2Cache.get(off1);
    if (!t) return null;
    const idx = c % this.l2Entries;
    const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
    const hi = dv.getUint32(8 * idx);
    const lo = dv.getUint32(8 * idx + 4);
    if (hi & ENTRY_COMPRESSED_HI || (this.header.version >= 3 && lo & ENTRY_ZERO_LO)) return null;
    const host = entryOffset(hi, lo);
    if (host === 0 || host % this.cs !== 0) return null;
    return { kind: Kind.Normal, host, csize: 0, copied: (hi & ENTRY_COPIED_HI) !== 0 };
  }

  /** Looks up guest cluster `c` (qcow2_get_host_offset), validating what it finds. */
  async map(c: number, writeAt?: number): Promise<Mapping> {
    const l1i = Math.floor(c / this.l2Entries);
    const e1 = this.l1Entry(l1i);
    if (e1.off === 0) return { kind: Kind.Unallocated, host: 0, csize: 0, copied: false };
    if (e1.off % this.cs !== 0) await this.signalCorruption(`L2 table offset 0x${e1.off.toString(16)} unaligned (L1 index: 0x${l1i.toString(16)})`);
    const t = await this.l2Table(e1.off);
    const idx = c % this.l2Entries;
    const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
    const hi = dv.getUint32(8 * idx);
    const lo = dv.getUint32(8 * idx + 4);
    if (hi & ENTRY_COMPRESSED_HI) {
      const { offset: host, sectors } = compressedDescriptor(hi, lo, this.header.clusterBits);
      return { kind: Kind.Compressed, host, csize: sectors * 512 - (host % 512), copied: false };
    }
    const host = entryOffset(hi, lo);
    const copied = (hi & ENTRY_COPIED_HI) !== 0;
    if (this.header.version >= 3 && lo & ENTRY_ZERO_LO) return { kind: host ? Kind.ZeroAlloc : Kind.ZeroPlain, host, csize: 0, copied };
    if (host === 0) return { kind: Kind.Unallocated, host: 0, csize: 0, copied: false };
    if (host % this.cs !== 0) {
      // A write meets it in handle_copied, a read in qcow2_get_host_offset: QEMU words each.
      if (writeAt !== undefined) await this.signalCorruption(`Data cluster offset ${hx(host)} unaligned (guest offset: ${hx(writeAt)})`);
      await this.signalCorruption(`Cluster allocation offset ${hx(host)} unaligned (L2 offset: ${hx(e1.off)}, L2 index: ${hx(idx)})`);
    }
    return { kind: Kind.Normal, host, csize: 0, copied };
  }

  /**
   * QEMU's qcow2_signal_corruption: a writable image gets the corrupt bit and refuses all
   * further I/O; a read-only one only fails this request.
   */
  async signalCorruption(msg: string): Promise<never> {
    if (!this.readOnly && !this.corrupt) {
      this.corrupt = true;
      this.dead = msg;
      this.header.incompatible |= INCOMPAT_CORRUPT;
      const line = `qcow2: Marking image as corrupt: ${msg}; further corruption events will be suppressed`;
      this.onCorruption(line);
      await this.writeFeatureWords().catch(() => undefined);
      await this.pool.fdatasync(this.fd).catch(() => undefined);
      throw new Error(line);
    }
    throw new Error(`qcow2: Image is corrupt: ${msg}; further non-fatal corruption events will be suppressed`);
  }

  onCorruption: (message: string) => void = (m) => void process.stderr.write(m + "\n");

  private alive(): void {
    if (this.dead) throw new Error(`qcow2: image marked corrupt (${this.dead}); no further I/O`);
  }

  // --- reads ----------------------------------------------------------------------

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    this.alive();
    const c0 = Math.floor(offset / this.cs);
    const in0 = offset - c0 * this.cs;
    if (in0 + length <= this.cs) {
      const m = this.mapSync(c0);
      if (m) return this.pool.pread(this.fd, m.host + in0, length);
    }
    const out = new Uint8Array(length);
    const parts: Promise<void>[] = [];
    for (let pos = offset; pos < offset + length; ) {
      const c = Math.floor(pos / this.cs);
      const inC = pos - c * this.cs;
      const n = Math.min(this.cs - inC, offset + length - pos);
      parts.push(this.readPart(c, inC, out.subarray(pos - offset, pos - offset + n), pos));
      pos += n;
    }
    await Promise.all(parts);
    return out;
  }

  private async readPart(c: number, inC: number, dst: Uint8Array, pos: number): Promise<void> {
    const m = await this.map(c);
    switch (m.kind) {
      case Kind.Normal:
        dst.set(await this.pool.pread(this.fd, m.host + inC, dst.length));
        return;
      case Kind.Compressed:
        dst.set((await this.decompress(m)).subarray(inC, inC + dst.length));
        return;
      case Kind.Unallocated:
        if (this.backing && pos < this.backing.size) {
          const n = Math.min(dst.length, this.backing.size - pos);
          dst.set(await this.backing.read(pos, n));
        }
        return;
      default:
        return; // zero clusters: dst is already zeros
    }
  }

  private async decompress(m: Mapping): Promise<Uint8Array> {
    const raw = await this.pool.pread(this.fd, m.host, m.csize);
    let out: Uint8Array;
    try {
      out = await this.pool.inflate(raw, this.cs);
    } catch (e) {
      throw new Error(`qcow2: failed to decompress cluster at 0x${m.host.toString(16)}: ${(e as Error).message}`);
    }
    if (out.length < this.cs) throw new Error(`qcow2: compressed cluster at 0x${m.host.toString(16)} decompresses to ${out.length} bytes, expected ${this.cs}`);
    return out.subarray(0, this.cs);
  }

  /** The current contents of guest cluster `c`, for copy-on-write. */
  private async clusterContents(c: number, m: Mapping): Promise<Uint8Array> {
    const buf = new Uint8Array(this.cs);
    await this.readPart(c, 0, buf.subarray(0, Math.min(this.cs, this.size - c * this.cs)), c * this.cs);
    void m;
    return buf;
  }

  // --- writes ---------------------------------------------------------------------

  private writable(): void {
    if (this.readOnly) throw new Error("Block node is read-only");
    this.alive();
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this, offset, data.length);
    this.writable();
    const c0 = Math.floor(offset / this.cs);
    const in0 = offset - c0 * this.cs;
    if (in0 + data.length <= this.cs) return this.writePart(c0, in0, data);
    const parts: Promise<void>[] = [];
    // Whole clusters in the middle go through the run allocator; partial ends one by one.
    const firstWhole = in0 === 0 ? c0 : c0 + 1;
    const endWhole = Math.floor((offset + data.length) / this.cs);
    if (endWhole - firstWhole >= 2) {
      if (in0 !== 0) parts.push(this.writePart(c0, in0, data.subarray(0, this.cs - in0)));
      const midStart = firstWhole * this.cs - offset;
      parts.push(this.writeWholeClusters(firstWhole, data.subarray(midStart, midStart + (endWhole - firstWhole) * this.cs)));
      const tail = offset + data.length - endWhole * this.cs;
      if (tail > 0) parts.push(this.writePart(endWhole, 0, data.subarray(data.length - tail)));
      await Promise.all(parts);
      return;
    }
    for (let pos = offset; pos < offset + data.length; ) {
      const c = Math.floor(pos / this.cs);
      const inC = pos - c * this.cs;
      const n = Math.min(this.cs - inC, offset + data.length - pos);
      parts.push(this.writePart(c, inC, data.subarray(pos - offset, pos - offset + n)));
      pos += n;
    }
    await Promise.all(parts);
  }

  /**
   * Whole clusters [c0, c0 + data.length/cs): clusters already owned are overwritten in place;
   * runs of clusters that need new storage get one contiguous allocation and one write, as
   * QEMU allocates a run of clusters for one request (qcow2_alloc_host_offset).
   */
  private async writeWholeClusters(c0: number, data: Uint8Array): Promise<void> {
    const n = data.length / this.cs;
    await this.lockedClusters(c0, n, async () => {
      const maps: Mapping[] = [];
      for (let i = 0; i < n; i++) maps.push(await this.map(c0 + i, (c0 + i) * this.cs));
      const io: Promise<void>[] = [];
      for (let i = 0; i < n; ) {
        const m = maps[i];
        if (m.kind === Kind.Normal && m.copied) {
          this.checkOverlap(m.host);
          io.push(this.pool.pwrite(this.fd, m.host, data.subarray(i * this.cs, (i + 1) * this.cs)));
          i++;
          continue;
        }
        // A run that needs allocation, kept inside one L2 table.
        let j = i + 1;
        const l2end = (Math.floor((c0 + i) / this.l2Entries) + 1) * this.l2Entries - c0;
        while (j < n && j < l2end && !(maps[j].kind === Kind.Normal && maps[j].copied)) j++;
        await this.markDirtyForLazyRefcounts();
        const { table, off: l2off } = await this.ensureL2(c0 + i);
        const host = await this.refs.alloc(j - i);
        this.checkOverlap(host, null, (j - i) * this.cs);
        await this.pool.pwrite(this.fd, host, data.subarray(i * this.cs, j * this.cs));
        for (let k = i; k < j; k++) {
          const h = host + (k - i) * this.cs;
          this.setL2Entry(table, l2off, (c0 + k) % this.l2Entries, (ENTRY_COPIED_HI | Math.floor(h / 0x100000000)) >>> 0, h >>> 0);
          this.release(maps[k]);
        }
        i = j;
      }
      await Promise.all(io);
    });
  }

  private async writePart(c: number, inC: number, data: Uint8Array): Promise<void> {
    const m = this.mapSync(c) ?? (await this.map(c, c * this.cs + inC));
    if (m.kind === Kind.Normal && m.copied) {
      this.checkOverlap(m.host);
      await this.pool.pwrite(this.fd, m.host + inC, data);
      return;
    }
    // Metadata decisions under the lock; the data write of a new cluster outside it, so that
    // allocations of different clusters overlap (QEMU's cluster_allocs). Writers to a cluster
    // whose allocation is in flight wait for it.
    const plan = await this.lockedClusters(c, 1, async (): Promise<{ inPlace: number } | { alloc: PendingAlloc }> => {
      const m2 = await this.map(c, c * this.cs + inC);
      if (m2.kind === Kind.Normal && (m2.copied || (await this.refs.get(m2.host / this.cs)) === 1)) return { inPlace: m2.host };
      // A fresh cluster is appended past the end of the file, where the file reads as zeros:
      // when the rest of the cluster must be zeros anyway, only the new data is written (QEMU
      // gets the same effect with write-zeroes for the COW areas).
      const zeroBase =
        m2.kind === Kind.ZeroAlloc || m2.kind === Kind.ZeroPlain || (m2.kind === Kind.Unallocated && (!this.backing || c * this.cs >= this.backing.size));
      let buf = data;
      let at = 0;
      if (zeroBase) at = inC;
      else if (inC !== 0 || data.length !== this.cs) {
        buf = await this.clusterContents(c, m2);
        buf.set(data, inC);
      }
      await this.markDirtyForLazyRefcounts();
      const { table, off: l2off } = await this.ensureL2(c);
      const host = await this.refs.alloc(1);
      this.checkOverlap(host);
      let finish: () => void = () => undefined;
      this.allocating.set(c, new Promise<void>((r) => (finish = r)));
      return { alloc: { host, buf, at, table, l2off, old: m2, finish } };
    });
    if ("inPlace" in plan) {
      this.checkOverlap(plan.inPlace);
      await this.pool.pwrite(this.fd, plan.inPlace + inC, data);
      return;
    }
    const a = plan.alloc;
    try {
      await this.pool.pwrite(this.fd, a.host + a.at, a.buf); // data before the entry that points to it
      this.setL2Entry(a.table, a.l2off, c % this.l2Entries, (ENTRY_COPIED_HI | Math.floor(a.host / 0x100000000)) >>> 0, a.host >>> 0);
      this.release(a.old);
    } finally {
      // On failure the cluster stays counted but unreferenced: a leak, never a corruption.
      this.allocating.delete(c);
      a.finish();
    }
  }

  /** Guest clusters whose new storage is being written (their entries are not set yet). */
  private readonly allocating = new Map<number, Promise<void>>();

  /** Runs `fn` under the lock once no allocation is in flight for clusters [c0, c0+n). */
  private async lockedClusters<T>(c0: number, n: number, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      const r = await this.lock.run(async (): Promise<{ wait: Promise<unknown> } | { value: T }> => {
        if (this.allocating.size) {
          const waits: Promise<void>[] = [];
          for (const [c, p] of this.allocating) if (c >= c0 && c < c0 + n) waits.push(p);
          if (waits.length) return { wait: Promise.all(waits) };
        }
        return { value: await fn() };
      });
      if ("value" in r) return r.value;
      await r.wait;
    }
  }

  /**
   * Under the lock: allocates a fresh cluster holding `buf` for guest cluster `c`. Only the
   * data is written now; the L2/L1 changes stay in the write-back cache until `writeback`
   * (flush, close, or a timer), which writes refcounts, then L2 tables, then L1 entries, then
   * frees replaced clusters: QEMU's cache dependency order. A crash before that leaks.
   */
  private async setCluster(c: number, old: Mapping, buf: Uint8Array | null): Promise<void> {
    await this.markDirtyForLazyRefcounts();
    const { table, off: l2off } = await this.ensureL2(c);
    let entryHi = 0;
    let entryLo = 0;
    if (buf) {
      const host = await this.refs.alloc(1);
      this.checkOverlap(host);
      await this.pool.pwrite(this.fd, host, buf);
      entryHi = (ENTRY_COPIED_HI | Math.floor(host / 0x100000000)) >>> 0;
      entryLo = host >>> 0;
    } else {
      entryLo = ENTRY_ZERO_LO;
    }
    this.setL2Entry(table, l2off, c % this.l2Entries, entryHi, entryLo);
    this.release(old);
  }

  /** Where the next compressed cluster may go: byte offset inside a cluster already counted. */
  private compressedTail = 0;

  /**
   * Writes one whole guest cluster compressed (qcow2_co_pwritev_compressed_part), as
   * `convert -c` does: raw deflate packed back to back into host clusters, each host cluster
   * counted once per compressed cluster that touches it. A cluster that does not shrink is
   * written normally. Only unallocated clusters, as in QEMU.
   */
  async writeCompressed(c: number, data: Uint8Array): Promise<void> {
    this.writable();
    const tail = c * this.cs + data.length === this.size; // the last, partial cluster is zero-padded
    if (data.length > this.cs || (data.length !== this.cs && !tail)) throw new Error("qcow2: compressed writes must cover one whole cluster");
    if (data.length !== this.cs) {
      const padded = new Uint8Array(this.cs);
      padded.set(data);
      data = padded;
    }
    const z = await this.pool.deflate(data);
    await this.lockedClusters(c, 1, async () => {
      const m = await this.map(c);
      if (m.kind !== Kind.Unallocated) throw new Error("qcow2: compressed write to an allocated cluster");
      const x = 62 - (this.header.clusterBits - 8);
      const maxLen = (2 ** (62 - x)) * 512; // what the sector-count field can describe
      if (z.length >= this.cs || z.length > maxLen - 512) {
        await this.setCluster(c, m, data);
        return;
      }
      await this.markDirtyForLazyRefcounts();
      const { table, off: l2off } = await this.ensureL2(c);
      let at = this.compressedTail;
      const room = at % this.cs === 0 ? 0 : this.cs - (at % this.cs);
      if (z.length > room) {
        // Start in fresh clusters; they are counted by alloc, and the tail moves past them.
        const n = Math.ceil(z.length / this.cs);
        at = await this.refs.alloc(n);
        this.checkOverlap(at, null, n * this.cs);
      } else {
        await this.refs.update(Math.floor(at / this.cs), 1, 1); // one more user of the partly filled cluster
      }
      // (alloc counted each cluster of a fresh run once: that is this compressed cluster's share.)
      await this.pool.pwrite(this.fd, at, z);
      this.compressedTail = at + z.length;
      const sectors = Math.floor(((at % 512) + z.length + 511) / 512) - 1;
      const hi = (0x40000000 | (sectors << (x - 32)) | Math.floor(at / 0x100000000)) >>> 0;
      this.setL2Entry(table, l2off, c % this.l2Entries, hi, at >>> 0);
    });
  }

  private setL2Entry(table: Uint8Array, l2off: number, idx: number, hi: number, lo: number): void {
    this.checkOverlap(l2off, "active L2 table");
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    dv.setUint32(8 * idx, hi);
    dv.setUint32(8 * idx + 4, lo);
    this.dirtyL2.add(l2off);
    this.scheduleWriteback();
  }

  /** Drops the reference a mapping held, once the entry that replaced it is on disk. */
  private release(m: Mapping): void {
    if (m.kind === Kind.Normal || m.kind === Kind.ZeroAlloc) this.releases.push([m.host / this.cs, 1]);
    else if (m.kind === Kind.Compressed) {
      const first = Math.floor(m.host / this.cs);
      const last = Math.floor((m.host + m.csize - 1) / this.cs);
      this.releases.push([first, last - first + 1]);
    }
  }

  /** The L2 table for guest cluster `c`, allocated (zero-filled, linked from L1 in memory) if needed. */
  private async ensureL2(c: number): Promise<{ table: Uint8Array; off: number }> {
    const l1i = Math.floor(c / this.l2Entries);
    const e1 = this.l1Entry(l1i);
    if (e1.off !== 0 && (e1.copied || (await this.refs.get(e1.off / this.cs)) === 1)) return { table: await this.l2Table(e1.off), off: e1.off };
    const off = await this.refs.alloc(1);
    this.checkOverlap(off);
    const table = e1.off !== 0 ? (await this.l2Table(e1.off)).slice() : new Uint8Array(this.cs);
    this.l2Cache.set(off, table);
    this.dirtyL2.add(off);
    this.l2Offsets.add(off);
    if (e1.off) {
      this.l2Offsets.delete(e1.off);
      this.releases.push([e1.off / this.cs, 1]);
    }
    const e = new Uint8Array(8);
    putU64(e, 0, off);
    e[0] |= 0x80;
    this.l1.set(e, 8 * l1i);
    this.dirtyL1.add(l1i);
    this.scheduleWriteback();
    return { table, off };
  }

  private readonly dirtyL2 = new Set<number>();
  private readonly dirtyL1 = new Set<number>();
  /** Clusters to unreference after the next metadata write-back: [first cluster, count]. */
  private releases: Array<[number, number]> = [];
  private writebackTimer: NodeJS.Timeout | null = null;

  /** Metadata reaches the disk within a second even if the guest never flushes. */
  private scheduleWriteback(): void {
    if (this.writebackTimer) return;
    this.writebackTimer = setTimeout(() => {
      this.writebackTimer = null;
      if (!this.dead) void this.lock.run(() => this.writeback()).catch(() => undefined);
    }, 1000);
    this.writebackTimer.unref();
  }

  /**
   * Under the lock: refcounts, L2 tables, L1 entries, then the deferred frees, with an
   * fdatasync between dependent steps (as QEMU flushes the refcount cache before the L2 cache)
   * so that the order holds on the disk itself, not only in the page cache.
   */
  async writeback(): Promise<void> {
    const tables = [...this.dirtyL2];
    const idx = [...this.dirtyL1];
    const rel = this.releases;
    this.dirtyL2.clear();
    this.dirtyL1.clear();
    this.releases = [];
    await this.refs.settle();
    if (tables.length || idx.length) {
      await this.pool.fdatasync(this.fd);
      await Promise.all(tables.map((off) => this.pool.pwrite(this.fd, off, this.l2Cache.get(off)!.slice())));
      if (idx.length && tables.length) await this.pool.fdatasync(this.fd);
      await Promise.all(idx.map((i) => this.pool.pwrite(this.fd, this.header.l1TableOffset + 8 * i, this.l1.slice(8 * i, 8 * i + 8))));
    }
    if (rel.length) {
      if (tables.length || idx.length) await this.pool.fdatasync(this.fd);
      for (const [first, n] of rel) await this.refs.update(first, n, -1);
      await this.refs.settle();
    }
  }

  /**
   * QEMU's pre-write overlap check (qcow2_check_metadata_overlap) against the metadata known
   * in memory; `self` names the structure being written, which may of course overlap itself.
   */
  checkOverlap(host: number, self: string | null = null, len = this.cs): void {
    const h = this.header;
    const cs = this.cs;
    const hit = (start: number, size: number): boolean => host < start + size && start < host + len;
    let what: string | null = null;
    if (hit(0, cs)) what = "qcow2_header";
    else if (self !== "active L1 table" && hit(h.l1TableOffset, h.l1Size * 8)) what = "active L1 table";
    else if (self !== "refcount table" && hit(this.refs.tableOffset, this.refs.tableClusters * cs)) what = "refcount table";
    else if (self !== "active L2 table" && this.l2Offsets.has(host)) what = "active L2 table";
    else if (self !== "refcount block" && this.refs.isRefblock(host)) what = "refcount block";
    if (what) {
      this.corrupt = true;
      this.dead = `overlap with ${what}`;
      if (!this.readOnly) {
        this.header.incompatible |= INCOMPAT_CORRUPT;
        void this.writeFeatureWords().catch(() => undefined);
      }
      throw new Error(`qcow2: Marking image as corrupt: Preventing invalid write on metadata (overlaps with ${what}); further corruption events will be suppressed`);
    }
  }

  async writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void> {
    checkRange(this, offset, length);
    this.writable();
    await this.forEachCluster(offset, length, async (c, inC, n) => {
      if (n !== this.cs && !(c * this.cs + inC + n === this.size && inC === 0)) {
        await this.write(c * this.cs + inC, new Uint8Array(n));
        return;
      }
      await this.lockedClusters(c, 1, async () => {
        const m = await this.map(c);
        if (this.header.version < 3) {
          if (m.kind === Kind.Unallocated && !this.backing) return;
          await this.setCluster(c, m, new Uint8Array(this.cs));
          return;
        }
        if (m.kind === Kind.ZeroPlain || (m.kind === Kind.ZeroAlloc && !mayUnmap)) return;
        if (m.kind === Kind.Normal && m.copied && !mayUnmap) {
          // Keep the allocation, mark it zero (QCOW2_CLUSTER_ZERO_ALLOC).
          await this.markDirtyForLazyRefcounts();
          const { table, off } = await this.ensureL2(c);
          this.setL2Entry(table, off, c % this.l2Entries, (ENTRY_COPIED_HI | Math.floor(m.host / 0x100000000)) >>> 0, (m.host >>> 0) | ENTRY_ZERO_LO);
          return;
        }
        await this.setCluster(c, m, null);
      });
    });
  }

  /** Guest discard: whole clusters only, as QEMU; v3 leaves zero clusters, v2 unallocates. */
  async discard(offset: number, length: number): Promise<void> {
    checkRange(this, offset, length);
    this.writable();
    await this.forEachCluster(offset, length, async (c, inC, n) => {
      if (n !== this.cs && !(inC === 0 && c * this.cs + n === this.size)) return;
      await this.lockedClusters(c, 1, async () => {
        const m = await this.map(c);
        if (m.kind === Kind.Unallocated && !this.backing) return;
        if (m.kind === Kind.ZeroPlain) return;
        await this.markDirtyForLazyRefcounts();
        const { table, off } = await this.ensureL2(c);
        this.setL2Entry(table, off, c % this.l2Entries, 0, this.header.version >= 3 ? ENTRY_ZERO_LO : 0);
        this.release(m);
      });
    });
  }

  private async forEachCluster(offset: number, length: number, fn: (c: number, inC: number, n: number) => Promise<void>): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let pos = offset; pos < offset + length; ) {
      const c = Math.floor(pos / this.cs);
      const inC = pos - c * this.cs;
      const n = Math.min(this.cs - inC, offset + length - pos);
      parts.push(fn(c, inC, n));
      pos += n;
    }
    await Promise.all(parts);
  }

  // --- header and lifecycle ---------------------------------------------------------

  /** Rewrites the v3 feature words (72..95) in one write. */
  async writeFeatureWords(): Promise<void> {
    if (this.header.version < 3) return;
    const b = new Uint8Array(24);
    const h = this.header;
    putFeatureWord(b, 0, h.incompatible, h.incompatibleHigh);
    putFeatureWord(b, 8, h.compatible, h.compatibleHigh);
    putFeatureWord(b, 16, h.autoclear, h.autoclearHigh);
    await this.pool.pwrite(this.fd, 72, b);
  }

  private async setReftable(offset: number, clusters: number): Promise<void> {
    const b = new Uint8Array(12);
    putU64(b, 0, offset);
    putU32(b, 8, clusters);
    await this.pool.pwrite(this.fd, 48, b);
    this.header.refcountTableOffset = offset;
    this.header.refcountTableClusters = clusters;
  }

  /** Lazy refcounts: the dirty bit goes to disk (and is synced) before the first metadata change. */
  private async markDirtyForLazyRefcounts(): Promise<void> {
    if (!this.refs.lazy || this.lazyDirtySet) return;
    this.lazyDirtySet = true;
    this.header.incompatible |= INCOMPAT_DIRTY;
    await this.writeFeatureWords();
    await this.pool.fdatasync(this.fd);
  }

  async flush(): Promise<void> {
    if (this.readOnly || this.inactive) return;
    this.alive();
    await this.lock.run(async () => {
      await this.writeback();
      await this.refs.writeDirty();
      await this.pool.fdatasync(this.fd);
    });
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, offset, length);
    let c = Math.floor(offset / this.cs);
    const first = await this.map(c);
    const inC = offset - c * this.cs;
    let len = Math.min(this.cs - inC, length);
    for (;;) {
      if (offset + len >= offset + length) break;
      const m = await this.map(++c);
      if (m.kind !== first.kind || (first.kind === Kind.Normal && m.host !== first.host + (c * this.cs - (offset - inC)))) break;
      if (first.kind === Kind.Compressed) break;
      len = Math.min(len + this.cs, length);
    }
    const base = { start: offset, length: len, depth: 0, compressed: false };
    switch (first.kind) {
      case Kind.Normal:
        return { ...base, present: true, zero: false, data: true, offset: first.host + inC };
      case Kind.Compressed:
        return { ...base, present: true, zero: false, data: true, compressed: true };
      case Kind.ZeroAlloc:
        return { ...base, present: true, zero: true, data: false, offset: first.host + inC };
      case Kind.ZeroPlain:
        return { ...base, present: true, zero: true, data: false };
      case Kind.Unallocated:
        if (this.backing && offset < this.backing.size) {
          const b = await this.backing.blockStatus(offset, Math.min(len, this.backing.size - offset));
          return { ...b, depth: b.depth + 1 };
        }
        return { ...base, depth: this.backing ? 1 : 0, present: false, zero: true, data: false };
    }
  }

  async actualSize(): Promise<number> {
    return (await this.fh.stat()).blocks * 512;
  }

  dirty(): boolean {
    return (this.header.incompatible & INCOMPAT_DIRTY) !== 0;
  }

  formatSpecific(): Qcow2Specific {
    const h = this.header;
    if (h.version < 3) return { compat: "0.10", "compression-type": "zlib", "refcount-bits": 16 };
    return {
      compat: "1.1",
      "compression-type": h.compressionType === 0 ? "zlib" : "zstd",
      "lazy-refcounts": (h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0,
      "refcount-bits": 1 << h.refcountOrder,
      corrupt: (h.incompatible & INCOMPAT_CORRUPT) !== 0,
      "extended-l2": false,
    };
  }

  /** Every piece of metadata on disk, the dirty bit cleared, all synced (qcow2_mark_clean). */
  private async markClean(): Promise<void> {
    await this.lockedClusters(0, Number.MAX_SAFE_INTEGER, async () => {
      await this.writeback();
      await this.refs.writeDirty();
      if (this.lazyDirtySet) {
        await this.pool.fdatasync(this.fd);
        this.header.incompatible &= ~INCOMPAT_DIRTY;
        await this.writeFeatureWords();
        this.lazyDirtySet = false;
      }
      await this.pool.fdatasync(this.fd);
    });
  }

  /** Opened for a migration destination: hands off the metadata until reload(). */
  markInactive(): void {
    this.inactive = true;
  }

  /** qcow2_inactivate: the image is left clean on disk for its next owner. */
  async inactivate(): Promise<void> {
    if (!this.readOnly && !this.dead && !this.inactive) await this.markClean();
    this.inactive = true;
  }

  /**
   * qcow2_co_invalidate_cache: the previous owner may have allocated clusters and rewritten
   * tables since this driver read them, so the header, L1, L2 cache and refcounts are read
   * again from the file.
   */
  async reload(): Promise<void> {
    const fresh = await Qcow2Driver.open(this.filename, this.fh, this.pool, { readOnly: true });
    Object.assign(this.header, fresh.header);
    this.l1 = fresh.l1;
    this.l2Cache.clear();
    this.l2Offsets.clear();
    for (let i = 0; i < this.header.l1Size; i++) {
      const e = this.l1Entry(i);
      if (e.off) this.l2Offsets.add(e.off);
    }
    this.snapshots = fresh.snapshots;
    this.corrupt = fresh.corrupt;
    const refs = new Refcounts(this.refHost, new Uint8Array(0), this.header.refcountTableOffset, this.header.refcountTableClusters);
    refs.table = fresh.refs.table;
    refs.lazy = fresh.refs.lazy;
    if (!this.readOnly) await refs.computeNextFree((await this.fh.stat()).size);
    this.refs = refs;
    this.lazyDirtySet = false;
    this.inactive = false;
  }

  /** A clean close writes back lazy refcounts and clears the dirty bit (qcow2_mark_clean). */
  async close(): Promise<void> {
    try {
      if (!this.readOnly && !this.dead && !this.inactive) await this.markClean();
    } finally {
      // A write-back that fails (a corrupt image, a full disk) is reported, but the file and
      // the backing chain are released all the same: the caller cannot retry a close.
      if (this.writebackTimer) clearTimeout(this.writebackTimer);
      await this.refs.settle().catch(() => undefined);
      try {
        await this.fh.close();
      } finally {
        await this.backing?.close();
      }
    }
  }

  /**
   * Grows the virtual disk (qcow2_co_truncate without preallocation). A bigger L1 table is
   * written to new clusters first, then the header switches to it in one write (bytes 36..47
   * hold l1_size and l1_table_offset), then the old table is freed.
   */
  async truncate(size: number): Promise<void> {
    this.writable();
    if (size < this.header.size) throw new Error("qcow2 doesn't support shrinking images yet");
    if (size % 512 !== 0) throw new Error("The new size must be a multiple of 512");
    await this.lockedClusters(0, Number.MAX_SAFE_INTEGER, async () => {
      await this.writeback();
      const need = Math.ceil(Math.ceil(size / this.cs) / this.l2Entries);
      if (need > this.header.l1Size) {
        const bytes = need * 8;
        const clusters = Math.ceil(bytes / this.cs);
        const off = await this.refs.alloc(clusters);
        const l1 = new Uint8Array(bytes);
        l1.set(this.l1);
        await Promise.all([this.pool.pwrite(this.fd, off, l1), this.refs.settle()]);
        await this.pool.fdatasync(this.fd);
        const hdr = new Uint8Array(12);
        putU32(hdr, 0, need);
        putU64(hdr, 4, off);
        await this.pool.pwrite(this.fd, 36, hdr);
        await this.pool.fdatasync(this.fd);
        const old = { off: this.header.l1TableOffset, clusters: Math.ceil((this.header.l1Size * 8) / this.cs) };
        this.header.l1Size = need;
        this.header.l1TableOffset = off;
        this.l1 = l1;
        if (old.clusters > 0) await this.refs.update(old.off / this.cs, old.clusters, -1);
        await this.refs.settle();
      }
      const b = new Uint8Array(8);
      putU64(b, 0, size);
      await this.pool.pwrite(this.fd, 24, b);
      await this.pool.fdatasync(this.fd);
      this.header.size = size;
    });
  }

  /** After `check` rebuilt the refcount structure: switch to the new table. */
  adoptRefcountTable(table: Uint8Array, offset: number, clusters: number, nextFree: number): void {
    const lazy = this.refs.lazy;
    this.refs = new Refcounts(this.refHost, table, offset, clusters);
    this.refs.lazy = lazy;
    this.refs.nextFree = nextFree;
  }

  /** For check/repair: forget every cached table (after writing back what is dirty). */
  dropCaches(): void {
    if (this.dirtyL2.size || this.dirtyL1.size) throw new Error("qcow2: dropCaches with unwritten metadata; call writeback() first");
    this.l2Cache.clear();
  }
}

/** C's %#x: "0" for zero, else 0x and lowercase hex. */
function hx(n: number): string {
  return n === 0 ? "0" : `0x${n.toString(16)}`;
}

function parseExtensionsSafe(cluster0: Uint8Array, h: Qcow2Header): Map<string, string> {
  try {
    return parseExtensions(cluster0, h).featureNames;
  } catch {
    return new Map();
  }
}

/**
 * For a check, table offsets past 2^53 (which parseHeader reads as Infinity) become the
 * nearest number, as long as QEMU's check-mode open accepts them (below 2^63, cluster
 * aligned): such a table lies far past the end of the file, reads as zeros, and the check
 * reports what refers there instead of refusing to look, as qemu-img check does.
 */
function widenForCheck(h: Qcow2Header, first: Uint8Array, cs: number): void {
  const wide = (at: number): number => {
    const dv = new DataView(first.buffer, first.byteOffset, first.byteLength);
    const hi = dv.getUint32(at);
    const lo = dv.getUint32(at + 4);
    return hi < 0x80000000 && lo % cs === 0 ? hi * 0x100000000 + lo : Number.POSITIVE_INFINITY;
  };
  if (h.l1TableOffset === Number.POSITIVE_INFINITY) h.l1TableOffset = wide(40);
  if (h.refcountTableOffset === Number.POSITIVE_INFINITY) h.refcountTableOffset = wide(48);
  if (h.snapshotsOffset === Number.POSITIVE_INFINITY) h.snapshotsOffset = wide(64);
}
