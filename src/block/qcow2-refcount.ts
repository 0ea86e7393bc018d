// qcow2 reference counts (qcow2.txt "Host cluster management"): a contiguous refcount table
// of refblock offsets, refblocks of 2^refcount_order-bit entries. minivm allocates by
// appending at the end of the file, and orders its writes as QEMU does (refcounts before the
// L2 entry that uses the cluster), so a kill -9 can only leak clusters, never corrupt.

import { putU64, u64 } from "./qcow2-format.js";
import type { IoPool } from "./io-pool.js";

export interface RefcountHost {
  readonly pool: IoPool;
  readonly fd: number;
  readonly clusterBits: number;
  readonly refcountOrder: number;
  /** Writes header fields 48..59 (refcount_table_offset, refcount_table_clusters) in one write. */
  setReftable(offset: number, clusters: number): Promise<void>;
  /** Throws (marking the image corrupt) if a refblock write would land on other metadata. */
  checkRefblockWrite(offset: number): void;
}

/** Reads entry `i` of a refblock with 2^order-bit entries (sub-byte widths are LSB first, as QEMU). */
export function getRefcount(block: Uint8Array, i: number, order: number): number {
  switch (order) {
    case 4:
      return (block[2 * i] << 8) | block[2 * i + 1];
    case 3:
      return block[i];
    case 5:
      return ((block[4 * i] << 24) | (block[4 * i + 1] << 16) | (block[4 * i + 2] << 8) | block[4 * i + 3]) >>> 0;
    case 6:
      return u64(block, 8 * i);
    default: {
      const bits = 1 << order;
      const bit = i * bits;
      return (block[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
    }
  }
}

/** Writes entry `i`; returns the byte range touched. */
export function setRefcount(block: Uint8Array, i: number, order: number, v: number): [number, number] {
  switch (order) {
    case 4:
      block[2 * i] = v >> 8;
      block[2 * i + 1] = v & 0xff;
      return [2 * i, 2 * i + 2];
    case 3:
      block[i] = v;
      return [i, i + 1];
    case 5:
      new DataView(block.buffer, block.byteOffset, block.byteLength).setUint32(4 * i, v);
      return [4 * i, 4 * i + 4];
    case 6:
      putU64(block, 8 * i, v);
      return [8 * i, 8 * i + 8];
    default: {
      const bits = 1 << order;
      const bit = i * bits;
      const mask = ((1 << bits) - 1) << (bit & 7);
      block[bit >> 3] = (block[bit >> 3] & ~mask) | ((v << (bit & 7)) & mask);
      return [bit >> 3, (bit >> 3) + 1];
    }
  }
}

export class Refcounts {
  readonly cs: number;
  /** Refcount entries per refblock. */
  readonly perBlock: number;
  readonly max: number;
  /** Refblock offsets, one per table entry (0 = none). */
  table: number[];
  tableOffset: number;
  tableClusters: number;
  /** First cluster index that is free for appending. */
  nextFree = 0;
  /** With lazy refcounts, refblock writes wait for flush (the dirty bit covers a crash). */
  lazy = false;
  private readonly blocks = new Map<number, Uint8Array>();
  private readonly dirtyBlocks = new Set<number>();

  constructor(
    private readonly host: RefcountHost,
    tableBytes: Uint8Array,
    tableOffset: number,
    tableClusters: number,
  ) {
    this.cs = 2 ** host.clusterBits;
    this.perBlock = (this.cs * 8) >> host.refcountOrder;
    this.max = 2 ** (1 << host.refcountOrder) - 1;
    this.tableOffset = tableOffset;
    this.tableClusters = tableClusters;
    this.table = [];
    // REFT_OFFSET_MASK: the low 9 bits are reserved and never part of the offset.
    for (let i = 0; i < tableBytes.length / 8; i++) {
      const v = u64(tableBytes, 8 * i);
      this.table.push(Number.isFinite(v) ? v - (v % 512) : v);
    }
  }

  /** Refblock offsets must be cluster aligned (QEMU: "Refblock offset %#x unaligned"). */
  refblockError(i: number): string | null {
    const off = this.table[i];
    if (off % this.cs !== 0) return `Refblock offset 0x${off.toString(16)} unaligned (reftable index: 0x${i.toString(16)})`;
    return null;
  }

  async block(offset: number): Promise<Uint8Array> {
    let b = this.blocks.get(offset);
    if (!b) {
      b = await this.host.pool.pread(this.host.fd, offset, this.cs);
      const again = this.blocks.get(offset);
      if (again) return again;
      this.blocks.set(offset, b);
    }
    return b;
  }

  async get(cluster: number): Promise<number> {
    const ti = Math.floor(cluster / this.perBlock);
    if (ti >= this.table.length || this.table[ti] === 0) return 0;
    const why = this.refblockError(ti);
    if (why) throw new Error(why);
    return getRefcount(await this.block(this.table[ti]), cluster % this.perBlock, this.host.refcountOrder);
  }

  /**
   * Appends start at the end of the file; `alloc` then steps over clusters that are already
   * counted (a crash can leave refcounts for clusters the file never grew to hold).
   */
  async computeNextFree(fileSize: number): Promise<void> {
    this.nextFree = Math.ceil(fileSize / this.cs);
  }

  /** Adds `delta` to the refcount of every cluster in [first, first+count). */
  async update(first: number, count: number, delta: number): Promise<void> {
    for (let c = first; c < first + count; ) {
      const ti = Math.floor(c / this.perBlock);
      const end = Math.min(first + count, (ti + 1) * this.perBlock);
      if (ti >= this.table.length || this.table[ti] === 0) {
        if (delta < 0) throw new Error(`qcow2: refcount of cluster ${c} would drop below 0`);
        throw new Error(`qcow2: cluster ${c} has no refcount block`);
      }
      const off = this.table[ti];
      const why = this.refblockError(ti);
      if (why) throw new Error(why);
      this.host.checkRefblockWrite(off);
      const b = await this.block(off);
      let lo = Infinity;
      let hi = 0;
      for (let k = c; k < end; k++) {
        const i = k % this.perBlock;
        const v = getRefcount(b, i, this.host.refcountOrder) + delta;
        if (v < 0 || v > this.max) throw new Error(`qcow2: refcount of cluster ${k} out of range (${v})`);
        const [a, z] = setRefcount(b, i, this.host.refcountOrder, v);
        lo = Math.min(lo, a);
        hi = Math.max(hi, z);
      }
      if (this.lazy) this.dirtyBlocks.add(off);
      else {
        const r = this.dirtyRanges.get(off);
        this.dirtyRanges.set(off, r ? [Math.min(r[0], lo), Math.max(r[1], hi)] : [lo, hi]);
      }
      c = end;
    }
  }

  /**
   * Allocates `n` contiguous clusters at the end of the file with refcount 1 and returns the
   * byte offset. Refblocks that do not exist yet are created first (each one counting itself
   * when it lies in its own range), growing the table if it is full.
   */
  async alloc(n: number): Promise<number> {
    for (let k = 0; k < n; ) {
      if ((await this.get(this.nextFree + k)) !== 0) {
        this.nextFree += k + 1;
        k = 0;
      } else k++;
    }
    for (;;) {
      const start = this.nextFree;
      const lastTi = Math.floor((start + n - 1) / this.perBlock);
      let missing = -1;
      for (let ti = Math.floor(start / this.perBlock); ti <= lastTi; ti++) {
        if (ti >= this.table.length || this.table[ti] === 0) {
          missing = ti;
          break;
        }
      }
      if (missing < 0) break;
      if (missing >= this.table.length) await this.growTable(missing + 1);
      else await this.createRefblock(missing);
    }
    const start = this.nextFree;
    this.nextFree += n;
    await this.update(start, n, 1);
    return start * this.cs;
  }

  /** Refblock byte ranges changed in memory and not yet written: block offset -> [lo, hi). */
  private readonly dirtyRanges = new Map<number, [number, number]>();
  private settling: Promise<void> = Promise.resolve();

  /**
   * Writes every changed refblock range (call before writing what depends on it). Settles run
   * one after another and write current contents, so two writes of the same bytes can never
   * be in flight together and land in the wrong order.
   */
  settle(): Promise<void> {
    const run = async (): Promise<void> => {
      while (this.dirtyRanges.size) {
        const batch = [...this.dirtyRanges];
        this.dirtyRanges.clear();
        await Promise.all(batch.map(([off, [lo, hi]]) => this.host.pool.pwrite(this.host.fd, off + lo, this.blocks.get(off)!.slice(lo, hi))));
      }
    };
    this.settling = this.settling.then(run, run);
    return this.settling;
  }

  private async createRefblock(ti: number): Promise<void> {
    const at = this.nextFree++;
    const b = new Uint8Array(this.cs);
    const self = Math.floor(at / this.perBlock) === ti;
    if (self) setRefcount(b, at % this.perBlock, this.host.refcountOrder, 1);
    // The block's contents first, then the table entry that points to it.
    await this.host.pool.pwrite(this.host.fd, at * this.cs, b);
    this.blocks.set(at * this.cs, b);
    this.table[ti] = at * this.cs;
    this.refblockSet = null;
    const e = new Uint8Array(8);
    putU64(e, 0, at * this.cs);
    await this.host.pool.pwrite(this.host.fd, this.tableOffset + 8 * ti, e);
    if (!self) await this.update(at, 1, 1);
  }

  /**
   * A bigger table: new refblocks and the new table go into fresh refblock ranges past the end
   * of the file, so they only count themselves; then the header switches to the new table in a
   * single write, and the old table's clusters are freed.
   */
  async growTable(minEntries: number): Promise<void> {
    const base = Math.ceil(this.nextFree / this.perBlock);
    const first = base * this.perBlock;
    let r = 1;
    let k = 0;
    let entries = 0;
    for (;;) {
      entries = Math.max(minEntries, this.table.length * 2, base + r);
      k = Math.ceil((entries * 8) / this.cs);
      const r2 = Math.ceil((r + k) / this.perBlock);
      if (r2 <= r) break;
      r = r2;
    }
    entries = (k * this.cs) / 8;
    const newTable = this.table.slice();
    while (newTable.length < entries) newTable.push(0);
    for (let j = 0; j < r; j++) {
      const b = new Uint8Array(this.cs);
      for (let c = first + j * this.perBlock; c < Math.min(first + r + k, first + (j + 1) * this.perBlock); c++) setRefcount(b, c % this.perBlock, this.host.refcountOrder, 1);
      await this.host.pool.pwrite(this.host.fd, (first + j) * this.cs, b);
      this.blocks.set((first + j) * this.cs, b);
      newTable[base + j] = (first + j) * this.cs;
    }
    const tb = new Uint8Array(k * this.cs);
    newTable.forEach((v, i) => putU64(tb, 8 * i, v));
    const tableOff = (first + r) * this.cs;
    await this.host.pool.pwrite(this.host.fd, tableOff, tb);
    await this.settle();
    await this.host.pool.fdatasync(this.host.fd);
    await this.host.setReftable(tableOff, k);
    const old = { off: this.tableOffset, clusters: this.tableClusters };
    this.table = newTable;
    this.refblockSet = null;
    this.tableOffset = tableOff;
    this.tableClusters = k;
    this.nextFree = first + r + k;
    await this.update(old.off / this.cs, old.clusters, -1);
  }

  /** Writes refblocks held back by lazy refcounts. */
  async writeDirty(): Promise<void> {
    for (const off of this.dirtyBlocks) await this.host.pool.pwrite(this.host.fd, off, this.blocks.get(off)!);
    this.dirtyBlocks.clear();
  }

  private refblockSet: Set<number> | null = null;
  isRefblock(offset: number): boolean {
    this.refblockSet ??= new Set(this.table.filter((o) => o !== 0));
    return this.refblockSet.has(offset);
  }

  /** Every refblock offset in use (for overlap checks and `check`). */
  refblockOffsets(): number[] {
    return this.table.filter((o) => o !== 0);
  }
}
