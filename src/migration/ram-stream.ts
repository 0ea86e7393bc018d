// The sending half of QEMU's RAM section, version 4 (migration/ram.c: ram_save_setup,
// migration_bitmap_sync, ram_find_and_save_block, save_page_header, save_zero_page,
// ram_save_page). Guest RAM is one block in a SharedArrayBuffer that the vCPU keeps writing;
// the shared dirty bitmap (bit p of word p>>>5 = page p) is set on every write. The saver
// takes those bits into its own migration bitmap at each sync and sends the pages it holds.
//
// Record layout (all big-endian): be64 (page offset in the block | flags); unless CONTINUE is
// set, u8 length + the block's idstr; then the payload: ZERO -> one fill byte, PAGE -> the
// page, MEM_SIZE -> the block list (setup only), EOS -> nothing (ends the section's RAM data).

import type { QemuFileWriter } from "./qemu-file.js";

/** RAM_SAVE_FLAG_* (migration/ram.c); the low bits of a page-aligned offset. */
export const RAM_SAVE_FLAG_FULL = 0x01;
export const RAM_SAVE_FLAG_ZERO = 0x02;
export const RAM_SAVE_FLAG_MEM_SIZE = 0x04;
export const RAM_SAVE_FLAG_PAGE = 0x08;
export const RAM_SAVE_FLAG_EOS = 0x10;
export const RAM_SAVE_FLAG_CONTINUE = 0x20;
export const RAM_SAVE_FLAG_XBZRLE = 0x40;
export const RAM_SAVE_FLAG_HOOK = 0x80;

/** TARGET_PAGE_SIZE of riscv32. */
export const RAM_PAGE_SIZE = 4096;
const PAGE_SHIFT = 12;

/** The RAM section's idstr and version (ram_mig_init: register_savevm_live("ram", 0, 4, ...)). */
export const RAM_SECTION_IDSTR = "ram";
export const RAM_SECTION_VERSION = 4;

/** QEMU riscv virt's main RAM block (memory_region_init_ram(..., "riscv_virt_board.ram")). */
export const VIRT_RAM_BLOCK = "riscv_virt_board.ram";

export interface RamSaverOptions {
  /** Guest RAM (a view over the shared RAM buffer). */
  ram: Uint8Array;
  /** The shared dirty bitmap: bit p of word p>>>5 is page p. */
  dirty: Int32Array;
  /** The RAMBlock idstr; default riscv_virt_board.ram. */
  blockName?: string;
}

const popcount = (x: number): number => {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
};

/** One RAM block being migrated: its migration bitmap, scan position and counters. */
export class RamSaver {
  readonly ram: Uint8Array;
  readonly dirty: Int32Array;
  readonly blockName: string;
  readonly pages: number;
  /** QEMU's migration bitmap (RAMBlock.bmap): pages still to send. Local to the sender. */
  readonly bitmap: Int32Array;
  private remaining = 0;
  private synced = false;
  /** Where the next scan starts (the page after the last one sent, as PageSearchStatus). */
  private cursor = 0;
  /** The last record carried the block name in this section: later ones say CONTINUE. */
  private named = false;
  /** The same RAM as a Buffer, for memcmp against the zero page. */
  private readonly live: Buffer;
  private readonly zeroPage = Buffer.alloc(RAM_PAGE_SIZE);
  private readonly nameBytes: Uint8Array;

  /** ram_counters.duplicate: pages sent as ZERO records. */
  zeroPages = 0;
  /** ram_counters.normal: pages sent as PAGE records. */
  normalPages = 0;
  /** Bytes of every record this saver wrote (headers and payloads). */
  bytes = 0;
  /** Times syncDirtyBitmap ran (dirty-sync-count). */
  syncCount = 0;
  /** Pages newly found dirty at the last sync (for dirty-pages-rate). */
  lastSyncDirtied = 0;

  constructor(opts: RamSaverOptions) {
    if (opts.ram.length % RAM_PAGE_SIZE !== 0) throw new Error(`RAM of ${opts.ram.length} bytes is not a whole number of pages`);
    this.ram = opts.ram;
    this.live = Buffer.from(opts.ram.buffer, opts.ram.byteOffset, opts.ram.length);
    this.dirty = opts.dirty;
    this.blockName = opts.blockName ?? VIRT_RAM_BLOCK;
    this.nameBytes = Buffer.from(this.blockName, "utf8");
    if (this.nameBytes.length === 0 || this.nameBytes.length > 255) throw new Error(`RAM block name "${this.blockName}" must be 1..255 bytes`);
    this.pages = opts.ram.length >>> PAGE_SHIFT;
    const words = Math.ceil(this.pages / 32);
    if (opts.dirty.length < words) throw new Error(`dirty bitmap of ${opts.dirty.length} words cannot cover ${this.pages} pages`);
    this.bitmap = new Int32Array(words);
  }

  /** ram_bytes_total: the block's length. */
  get totalBytes(): number {
    return this.ram.length;
  }

  /** Pages still to send (migration_dirty_pages). */
  get remainingPages(): number {
    return this.remaining;
  }

  /** ZERO + PAGE records written. */
  get pagesSent(): number {
    return this.zeroPages + this.normalPages;
  }

  /** ram_counters.normal-bytes. */
  get normalBytes(): number {
    return this.normalPages * RAM_PAGE_SIZE;
  }

  /**
   * migration_bitmap_sync: move the shared dirty bits into the migration bitmap, clearing
   * them atomically so a write after this point dirties its page again. The first sync
   * (ram_save_setup's "every page is dirty") takes every page. Returns the pages to send.
   */
  syncDirtyBitmap(): number {
    const words = this.bitmap.length;
    let added = 0;
    if (!this.synced) {
      this.synced = true;
      for (let w = 0; w < words; w++) {
        Atomics.exchange(this.dirty, w, 0);
        const bits = w === words - 1 && this.pages % 32 !== 0 ? (1 << this.pages % 32) - 1 : -1;
        added += popcount(bits & ~this.bitmap[w]);
        this.bitmap[w] = bits;
      }
    } else {
      for (let w = 0; w < words; w++) {
        // A plain read first: most words are clean, and a bit set after it is taken next sync.
        if (this.dirty[w] === 0) continue;
        const got = Atomics.exchange(this.dirty, w, 0);
        added += popcount(got & ~this.bitmap[w]);
        this.bitmap[w] |= got;
      }
    }
    this.remaining += added;
    this.lastSyncDirtied = added;
    this.syncCount++;
    return this.remaining;
  }

  /** Forget the block name sent: the next record names its block again (a new section). */
  startSection(): void {
    this.named = false;
  }

  /** The MEM_SIZE record and block list of ram_save_setup (no EOS: the caller ends the section). */
  writeBlockList(w: QemuFileWriter): number {
    const before = w.bytesWritten;
    w.put64n(this.ram.length + RAM_SAVE_FLAG_MEM_SIZE);
    w.put8(this.nameBytes.length);
    w.putBytes(this.nameBytes);
    w.put64n(this.ram.length);
    return w.bytesWritten - before;
  }

  /** The EOS record that ends this section's RAM data. */
  writeEos(w: QemuFileWriter): number {
    w.put64n(RAM_SAVE_FLAG_EOS);
    return 8;
  }

  private header(w: QemuFileWriter, offset: number, flags: number): number {
    if (this.named) {
      w.put64n(offset + (flags | RAM_SAVE_FLAG_CONTINUE));
      return 8;
    }
    w.put64n(offset + flags);
    w.put8(this.nameBytes.length);
    w.putBytes(this.nameBytes);
    this.named = true;
    return 9 + this.nameBytes.length;
  }

  /** The next page to send at or after the cursor, wrapping once; -1 when none. */
  private nextDirty(): number {
    const words = this.bitmap.length;
    let w = this.cursor >>> 5;
    let word = this.bitmap[w] & (-1 << (this.cursor & 31));
    for (let n = 0; n <= words; n++) {
      if (word !== 0) return (w << 5) + (31 - Math.clz32(word & -word));
      w = w + 1 === words ? 0 : w + 1;
      word = this.bitmap[w];
    }
    return -1;
  }

  /**
   * Send dirty pages until `budgetBytes` have been written or none is left (ram_save_iterate's
   * loop under the rate limit). As QEMU does, a page is examined and copied into the stream
   * straight from live RAM: the bit was cleared first, so a guest write that races with the
   * copy re-dirties the page in the shared bitmap and the next pass sends it again. The zero
   * test is a memcmp against a zero page (QEMU's buffer_is_zero), with no copy of its own.
   * Returns the bytes written.
   */
  sendDirty(w: QemuFileWriter, budgetBytes: number, maxPages = Infinity): number {
    let written = 0;
    let pages = 0;
    const live = this.live;
    while (this.remaining > 0 && written < budgetBytes && pages++ < maxPages) {
      const page = this.nextDirty();
      if (page < 0) {
        // The counter and the bitmap disagree only if someone else edited the bitmap.
        this.remaining = 0;
        break;
      }
      this.bitmap[page >>> 5] &= ~(1 << (page & 31));
      this.remaining--;
      this.cursor = page + 1 === this.pages ? 0 : page + 1;
      const off = page << PAGE_SHIFT;
      if (this.zeroPage.compare(live, off, off + RAM_PAGE_SIZE) === 0) {
        written += this.header(w, off, RAM_SAVE_FLAG_ZERO);
        w.put8(0);
        written += 1;
        this.zeroPages++;
      } else {
        written += this.header(w, off, RAM_SAVE_FLAG_PAGE);
        w.putBytes(this.ram.subarray(off, off + RAM_PAGE_SIZE));
        written += RAM_PAGE_SIZE;
        this.normalPages++;
      }
    }
    this.bytes += written;
    return written;
  }

  /** One page's record (ZERO or PAGE), straight from live RAM; returns the bytes written. */
  private writePage(w: QemuFileWriter, page: number): number {
    const off = page << PAGE_SHIFT;
    let written: number;
    if (this.zeroPage.compare(this.live, off, off + RAM_PAGE_SIZE) === 0) {
      written = this.header(w, off, RAM_SAVE_FLAG_ZERO);
      w.put8(0);
      written += 1;
      this.zeroPages++;
    } else {
      written = this.header(w, off, RAM_SAVE_FLAG_PAGE);
      w.putBytes(this.ram.subarray(off, off + RAM_PAGE_SIZE));
      written += RAM_PAGE_SIZE;
      this.normalPages++;
    }
    this.bytes += written;
    return written;
  }

  /** True when `page` is still to be sent. */
  isPending(page: number): boolean {
    return page >= 0 && page < this.pages && (this.bitmap[page >>> 5] & (1 << (page & 31))) !== 0;
  }

  /**
   * Postcopy: send `page` now if it is still to be sent (QEMU's get_queued_page; a page sent
   * already is in flight and not sent twice). Returns the bytes written, 0 when none.
   */
  sendPage(w: QemuFileWriter, page: number): number {
    if (!this.isPending(page)) return 0;
    this.bitmap[page >>> 5] &= ~(1 << (page & 31));
    this.remaining--;
    // The background scan carries on after the requested page (ram_save_queue_pages' effect).
    this.cursor = page + 1 === this.pages ? 0 : page + 1;
    return this.writePage(w, page);
  }

  /** The runs of pages still to send, as [first page, count] (postcopy's discard list). */
  pendingRuns(): Array<[number, number]> {
    const runs: Array<[number, number]> = [];
    let start = -1;
    for (let p = 0; p <= this.pages; p++) {
      const set = p < this.pages && (this.bitmap[p >>> 5] & (1 << (p & 31))) !== 0;
      if (set && start < 0) start = p;
      else if (!set && start >= 0) {
        runs.push([start, p - start]);
        start = -1;
      }
    }
    return runs;
  }

  /**
   * Postcopy recovery (ram_dirty_bitmap_reload): what the destination says it has received,
   * as QEMU's little-endian bitmap, becomes the complement: every page it lacks is sent again.
   */
  reloadFromReceived(received: Uint8Array): void {
    let remaining = 0;
    for (let p = 0; p < this.pages; p++) {
      const got = (received[p >>> 3] & (1 << (p & 7))) !== 0;
      const w = p >>> 5;
      const bit = 1 << (p & 31);
      if (got) this.bitmap[w] &= ~bit;
      else {
        this.bitmap[w] |= bit;
        remaining++;
      }
    }
    this.remaining = remaining;
    this.cursor = 0;
    this.named = false;
  }
}
