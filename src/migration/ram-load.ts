// The receiving half of QEMU's RAM section, version 4 (migration/ram.c ram_load_precopy,
// ram_block_from_stream, host_from_ram_block_offset). Pages go straight into the destination's
// RAM; every record is checked first: the block must be ours and of our size, the offset
// inside it, the flags a combination this loader knows. Errors use QEMU's words.

import type { QemuFileReader } from "./qemu-file.js";
import {
  RAM_PAGE_SIZE,
  RAM_SAVE_FLAG_CONTINUE,
  RAM_SAVE_FLAG_EOS,
  RAM_SAVE_FLAG_MEM_SIZE,
  RAM_SAVE_FLAG_PAGE,
  RAM_SAVE_FLAG_ZERO,
  VIRT_RAM_BLOCK,
} from "./ram-stream.js";

/** A stream that breaks the rules: the load fails with this message. */
export class MigrationLoadError extends Error {}

const hex = (v: number) => v.toString(16);

/** Postcopy: records placed between two turns of the receiver's event loop. */
const POSTCOPY_YIELD_RECORDS = 128;

export interface RamLoaderOptions {
  /** The destination's RAM (a view over its shared RAM buffer). */
  ram: Uint8Array;
  /** The RAMBlock idstr; default riscv_virt_board.ram. */
  blockName?: string;
  /**
   * The shared present bitmap (QEMU's receivedmap), for a destination that may go postcopy:
   * every page that arrives sets its bit. Once `postcopy` is set, a page that is already
   * present is dropped (the guest may have changed it since), a missing one is placed and its
   * waiters woken (UFFDIO_COPY's atomic placement).
   */
  present?: Int32Array;
  /** A page was placed during postcopy (for the fault-latency figures). */
  onPlaced?: (page: number) => void;
  /** The gate's waiting-word slot: notify only the word a thread waits on (null: always notify). */
  waiting?: { words: Int32Array; index: number };
}

export class RamLoader {
  readonly ram: Uint8Array;
  readonly blockName: string;
  /** The block of the last record that named one (QEMU keeps it across sections). */
  private lastBlock: string | null = null;
  /** Pages received as ZERO / PAGE records. */
  zeroPages = 0;
  normalPages = 0;
  readonly present: Int32Array | null;
  /** Set at POSTCOPY_LISTEN: pages are placed only where missing. */
  postcopy = false;
  /** Pages placed during postcopy, and their bytes on the wire. */
  postcopyPages = 0;
  private sinceYield = 0;
  private readonly onPlaced: ((page: number) => void) | null;

  constructor(opts: RamLoaderOptions) {
    this.ram = opts.ram;
    this.blockName = opts.blockName ?? VIRT_RAM_BLOCK;
    this.present = opts.present ?? null;
    this.onPlaced = opts.onPlaced ?? null;
    this.waiting = opts.waiting?.words ?? null;
    this.waitingIndex = opts.waiting?.index ?? 0;
  }

  private readonly waiting: Int32Array | null;
  private readonly waitingIndex: number;

  /** Read RAM records up to and including EOS (one START/PART/END section's RAM data). */
  async loadSection(r: QemuFileReader): Promise<void> {
    const ram = this.ram;
    for (;;) {
      if (!r.has(8)) await r.ensure(8);
      const word = r.be64n();
      if (!Number.isSafeInteger(word)) {
        // Offsets of 2^53 and more are far outside any block minivm has.
        throw new MigrationLoadError(`Illegal RAM offset ${hex(Math.floor(word / RAM_PAGE_SIZE) * RAM_PAGE_SIZE)}`);
      }
      const flags = word % RAM_PAGE_SIZE;
      const addr = word - flags;
      const kind = flags & ~RAM_SAVE_FLAG_CONTINUE;
      if (kind === RAM_SAVE_FLAG_ZERO || kind === RAM_SAVE_FLAG_PAGE) {
        await this.blockOf(r, flags);
        // host_from_ram_block_offset: the whole page must be inside the block.
        if (addr + RAM_PAGE_SIZE > ram.length) throw new MigrationLoadError(`Illegal RAM offset ${hex(addr)}`);
        const present = this.present;
        if (present !== null && this.postcopy) {
          const page = addr / RAM_PAGE_SIZE;
          const w = page >>> 5;
          const bit = 1 << (page & 31);
          if ((Atomics.load(present, w) & bit) !== 0) {
            // Already here (requested and sent twice, or resent after a recovery): the guest
            // owns this page now; drop the copy (UFFDIO_COPY's EEXIST).
            if (kind === RAM_SAVE_FLAG_ZERO) await r.get8();
            else await r.skip(RAM_PAGE_SIZE);
            continue;
          }
          if (kind === RAM_SAVE_FLAG_ZERO) {
            const fill = await r.get8();
            ram.fill(fill, addr, addr + RAM_PAGE_SIZE);
            this.zeroPages++;
          } else {
            if (!r.has(RAM_PAGE_SIZE)) await r.ensure(RAM_PAGE_SIZE);
            r.bytesInto(ram.subarray(addr, addr + RAM_PAGE_SIZE));
            this.normalPages++;
          }
          this.postcopyPages++;
          Atomics.or(present, w, bit);
          // Wake a waiter only where one waits (Atomics.notify costs a lock per call).
          if (this.waiting === null || Atomics.load(this.waiting, this.waitingIndex) === w + 1) Atomics.notify(present, w);
          this.onPlaced?.(page);
          // Let the thread's page requests out between runs of records: a buffer full of zero
          // pages holds thousands of them, and a faulting vCPU waits for its request to leave.
          if (++this.sinceYield >= POSTCOPY_YIELD_RECORDS) {
            this.sinceYield = 0;
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
          continue;
        }
        if (kind === RAM_SAVE_FLAG_ZERO) {
          const fill = await r.get8();
          // ram_handle_compressed: memset only when it changes something.
          if (fill !== 0 || !isZero(ram, addr)) ram.fill(fill, addr, addr + RAM_PAGE_SIZE);
          this.zeroPages++;
        } else {
          if (!r.has(RAM_PAGE_SIZE)) await r.ensure(RAM_PAGE_SIZE);
          r.bytesInto(ram.subarray(addr, addr + RAM_PAGE_SIZE));
          this.normalPages++;
        }
        if (present !== null) Atomics.or(present, addr >>> 17, 1 << ((addr >>> 12) & 31));
        continue;
      }
      if (flags === RAM_SAVE_FLAG_MEM_SIZE) {
        await this.blockList(r, addr);
        continue;
      }
      if (flags === RAM_SAVE_FLAG_EOS) return;
      // XBZRLE, compressed pages, RDMA hooks, FULL, MULTIFD_FLUSH and mixtures: not ours.
      throw new MigrationLoadError(`Unknown combination of migration flags: 0x${hex(flags)}`);
    }
  }

  /** ram_block_from_stream: the record's block, named or the last one. */
  private async blockOf(r: QemuFileReader, flags: number): Promise<void> {
    if (flags & RAM_SAVE_FLAG_CONTINUE) {
      if (this.lastBlock === null) throw new MigrationLoadError("Ack, bad migration stream!");
      return;
    }
    const id = await r.getCountedString();
    if (id !== this.blockName) throw new MigrationLoadError(`Can't find block ${id}`);
    this.lastBlock = id;
  }

  /** The MEM_SIZE block list: each block must exist here with the same length. */
  private async blockList(r: QemuFileReader, total: number): Promise<void> {
    let left = total;
    while (left > 0) {
      const id = await r.getCountedString();
      if (!r.has(8)) await r.ensure(8);
      const length = r.be64n();
      if (id !== this.blockName) throw new MigrationLoadError(`Unknown ramblock "${id}", cannot accept migration`);
      if (length !== this.ram.length) {
        // qemu_ram_resize on a block that cannot resize (error_setg_errno with EINVAL).
        throw new MigrationLoadError(`Length mismatch: ${id}: 0x${hex(length)} in != 0x${hex(this.ram.length)}: Invalid argument`);
      }
      if (length > left) throw new MigrationLoadError(`RAM block list says 0x${hex(total)} bytes in all, but its blocks add up to more`);
      left -= length;
    }
  }
}

const ZERO_PAGE = Buffer.alloc(RAM_PAGE_SIZE);

function isZero(ram: Uint8Array, off: number): boolean {
  return ZERO_PAGE.equals(ram.subarray(off, off + RAM_PAGE_SIZE));
}
