// virtio-blk (virtio 1.1 §5.2) behind the virtio-mmio transport, with QEMU 7.2's choices
// (hw/block/virtio-blk.c): requests are popped on QueueNotify, submitted to the BlockBackend
// and completed later on this thread (used ring + interrupt). Out-of-range requests are
// IOERR and counted invalid; a driver that breaks the ring gets DEVICE_NEEDS_RESET.

import type { BlockBackend } from "../src/block/backend.js";
import { BlockAcctType, nowNs } from "../src/block/accounting.js";
import type { VMStateDescription } from "../src/migration/vmstate.js";
import type { VirtioBackend, VirtioTransport } from "./virtio-mmio.js";
import { VirtqueueBroken, type VirtqChain, type Virtqueue } from "./virtqueue.js";

export const VIRTIO_ID_BLOCK = 2;

// Feature bits (§5.2.3).
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

// Request types and status (§5.2.6).
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
export const VIRTIO_BLK_ID_BYTES = 20;
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** QEMU's virtio-blk queue-size default; seg_max is queue size - 2 (seg-max-adjust). */
export const VIRTIO_BLK_QUEUE_SIZE = 256;
/** BDRV_REQUEST_MAX_SECTORS: QEMU's default max_discard_sectors / max_write_zeroes_sectors. */
export const BDRV_REQUEST_MAX_SECTORS = 0x3fffff;
/**
 * Largest IN/OUT transfer accepted; bigger ones fail with IOERR and count as invalid, as QEMU
 * fails requests above its max transfer. It bounds what a guest can make the host allocate.
 */
export const VIRTIO_BLK_MAX_TRANSFER = 64 * 1024 * 1024;
/** Config space up to write_zeroes_may_unmap and its padding (QEMU's size with these features). */
export const VIRTIO_BLK_CONFIG_SIZE = 0x3c;
const SECTOR = 512;

/** QEMU's VIRTIO_BLK_MAX_MERGE_REQS. */
export const VIRTIO_BLK_MAX_MERGE_REQS = 32;

interface RwRequest {
  sector: number;
  size: number;
  write: boolean;
  data: Uint8Array | null;
  bufs: { addr: number; len: number }[];
  finish: (status: number) => void;
  epoch: number;
}

/** virtio-blk's own migratable state: the guest-set write cache mode. */
export interface VirtioBlkState {
  writeback: boolean;
}

/**
 * Nested in the transport's description. Requests in flight are not state: the board drains
 * them before saving (QEMU instead re-queues them in its own virtio-blk subsections).
 */
export const VIRTIO_BLK_VMSD: VMStateDescription<VirtioBlkState> = {
  name: "virtio-blk",
  version_id: 1,
  minimum_version_id: 1,
  fields: [{ name: "writeback", type: "bool" }],
};

export class VirtioBlk implements VirtioBackend {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly vmsd = VIRTIO_BLK_VMSD;
  readonly numQueues = 1;
  readonly configSize = VIRTIO_BLK_CONFIG_SIZE;
  readonly features: readonly [number, number];
  /** QEMU's request-merging property (default on). */
  readonly mergeRequests: boolean;
  /** The migratable state; `writeback` is the config-space write cache flag (CONFIG_WCE). */
  private s: VirtioBlkState = { writeback: true };
  private transport: VirtioTransport | null = null;
  private readonly config = new Uint8Array(VIRTIO_BLK_CONFIG_SIZE);
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly blk: BlockBackend,
    private readonly opts: { serial?: string; requestMerging?: boolean } = {},
  ) {
    this.mergeRequests = opts.requestMerging ?? true;
    let f = (1 << VIRTIO_BLK_F_SEG_MAX) | (1 << VIRTIO_BLK_F_BLK_SIZE) | (1 << VIRTIO_BLK_F_FLUSH) | (1 << VIRTIO_BLK_F_CONFIG_WCE) | (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
    if (blk.readOnly) f |= 1 << VIRTIO_BLK_F_RO;
    this.features = [f >>> 0, 0];
    this.updateConfig();
  }

  attach(t: VirtioTransport): void {
    this.transport = t;
  }

  /** virtio_blk_update_config: capacity and limits, little-endian. */
  private updateConfig(): void {
    const dv = new DataView(this.config.buffer);
    const sectors = Math.floor(this.blk.size / SECTOR);
    dv.setUint32(0x00, sectors >>> 0, true);
    dv.setUint32(0x04, Math.floor(sectors / 0x100000000), true);
    dv.setUint32(0x0c, VIRTIO_BLK_QUEUE_SIZE - 2, true); // seg_max
    dv.setUint32(0x14, SECTOR, true); // blk_size
    this.config[0x20] = this.s.writeback ? 1 : 0;
    dv.setUint16(0x22, 1, true); // num_queues
    dv.setUint32(0x24, BDRV_REQUEST_MAX_SECTORS, true); // max_discard_sectors
    dv.setUint32(0x28, 1, true); // max_discard_seg
    dv.setUint32(0x2c, 1, true); // discard_sector_alignment
    dv.setUint32(0x30, BDRV_REQUEST_MAX_SECTORS, true); // max_write_zeroes_sectors
    dv.setUint32(0x34, 1, true); // max_write_zeroes_seg
    this.config[0x38] = 1; // write_zeroes_may_unmap
  }

  /** The disk changed size (block_resize): new capacity and a config interrupt. */
  resized(): void {
    this.updateConfig();
    this.transport?.configChanged();
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    const dv = new DataView(this.config.buffer);
    return size === 1 ? this.config[offset] : size === 2 ? dv.getUint16(offset, true) : dv.getUint32(offset, true);
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    // Only `writeback` is writable, and only with CONFIG_WCE (virtio_blk_set_config).
    if (offset === 0x20 && size === 1 && this.transport?.driverHasFeature(VIRTIO_BLK_F_CONFIG_WCE)) {
      this.s.writeback = value !== 0;
      this.config[0x20] = this.s.writeback ? 1 : 0;
    }
  }

  reset(): void {
    this.s.writeback = true;
    this.updateConfig();
  }

  queueNotify(index: number): void {
    const t = this.transport!;
    const vq = t.queue(index);
    if (!vq) return;
    // One submission stamp for every request of this kick: latency runs from here.
    const t0 = nowNs();
    try {
      for (;;) {
        const chain = vq.pop();
        if (!chain) break;
        this.handle(t, vq, chain, t0);
      }
    } finally {
      this.submitMultireq(t0);
    }
  }

  /** Reads or writes collected from one kick, not yet submitted (QEMU's MultiReqBuffer). */
  private mrb: RwRequest[] = [];

  /**
   * virtio_blk_submit_multireq: sort the batch by sector and merge runs of contiguous requests
   * (at most VIRTIO_BLK_MAX_MERGE_REQS, within the transfer limit) into one backend request.
   */
  private submitMultireq(t0: number): void {
    const reqs = this.mrb;
    if (reqs.length === 0) return;
    this.mrb = [];
    if (this.mergeRequests) reqs.sort((a, b) => a.sector - b.sector);
    let group: RwRequest[] = [];
    let bytes = 0;
    const flushGroup = (): void => {
      if (group.length) this.submitGroup(group, t0);
      group = [];
      bytes = 0;
    };
    for (const r of reqs) {
      const last = group[group.length - 1];
      const contiguous = last !== undefined && last.sector + last.size / SECTOR === r.sector;
      if (!this.mergeRequests || !contiguous || group.length >= VIRTIO_BLK_MAX_MERGE_REQS || bytes + r.size > VIRTIO_BLK_MAX_TRANSFER) flushGroup();
      group.push(r);
      bytes += r.size;
    }
    flushGroup();
  }

  private submitGroup(group: RwRequest[], t0: number): void {
    const t = this.transport!;
    const first = group[0];
    const offset = first.sector * SECTOR;
    const done = (status: number): void => {
      for (const r of group) r.finish(status);
    };
    this.inFlight++;
    const settle = (p: Promise<unknown>): void => {
      p.then(
        () => done(VIRTIO_BLK_S_OK),
        () => done(VIRTIO_BLK_S_IOERR),
      ).finally(() => {
        if (--this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    };
    if (first.write) {
      const writethrough = !this.s.writeback || !t.driverHasFeature(VIRTIO_BLK_F_FLUSH);
      const io = group.length === 1 ? this.blk.write(offset, first.data!, t0) : this.blk.writeMerged(offset, group.map((r) => r.data!), t0);
      settle(io.then(() => (writethrough ? this.blk.flush() : undefined)));
    } else {
      const io = group.length === 1 ? this.blk.read(offset, first.size, t0) : this.blk.readMerged(offset, group.map((r) => r.size), t0);
      settle(
        io.then((data) => {
          let at = 0;
          for (const r of group) {
            if (t.epoch === r.epoch) scatter(t, r.bufs, data.subarray(at, at + r.size));
            at += r.size;
          }
        }),
      );
    }
  }

  /** Resolves when no request is in flight (before migration or stop). */
  drain(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private handle(t: VirtioTransport, vq: Virtqueue, chain: VirtqChain, t0: number): void {
    if (chain.bad) throw new VirtqueueBroken(`virtio: bogus descriptor or out of resources (${chain.bad})`);
    const out = chain.buffers.filter((b) => !b.write);
    const inb = chain.buffers.filter((b) => b.write);
    if (out.length < 1 || inb.length < 1) throw new VirtqueueBroken("virtio-blk missing headers");
    const last = inb[inb.length - 1];
    if (last.len < 1) throw new VirtqueueBroken("virtio-blk request inhdr too short");
    const outLen = out.reduce((s, b) => s + b.len, 0);
    if (outLen < 16) throw new VirtqueueBroken("virtio-blk request outhdr too short");
    const inLen = inb.reduce((s, b) => s + b.len, 0);
    const statusAddr = last.addr + last.len - 1;
    const hdr = gather(t, out, 0, 16);
    const hv = new DataView(hdr.buffer);
    const type = hv.getUint32(0, true);
    const sector = hv.getUint32(8, true) + hv.getUint32(12, true) * 0x100000000;
    const epoch = t.epoch;
    const finish = (status: number): void => {
      if (t.epoch !== epoch) return; // reset since: the buffers are no longer ours to write
      t.ram.dmaWrite(statusAddr, Uint8Array.of(status));
      t.complete(vq, chain.head, inLen, epoch);
    };
    const run = (p: Promise<number>): void => {
      this.inFlight++;
      p.catch(() => VIRTIO_BLK_S_IOERR).then((status) => {
        finish(status);
        if (--this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    };
    const dataIn = { bufs: inb, len: inLen - 1 };
    switch (type) {
      case VIRTIO_BLK_T_IN:
      case VIRTIO_BLK_T_OUT: {
        const write = type === VIRTIO_BLK_T_OUT;
        const size = write ? outLen - 16 : dataIn.len;
        if (!this.rangeOk(sector, size) || size > VIRTIO_BLK_MAX_TRANSFER) {
          this.blk.stats.invalid(write ? BlockAcctType.WRITE : BlockAcctType.READ);
          finish(VIRTIO_BLK_S_IOERR);
          return;
        }
        // Collected, then merged and submitted at the end of the kick (or when the type changes);
        // a driver that cannot flush gets write-through, as QEMU does without VIRTIO_BLK_F_FLUSH.
        if (this.mrb.length && (this.mrb[0].write !== write || this.mrb.length >= VIRTIO_BLK_MAX_MERGE_REQS)) this.submitMultireq(t0);
        this.mrb.push({ sector, size, write, data: write ? gather(t, out, 16, size) : null, bufs: dataIn.bufs, finish, epoch });
        return;
      }
      case VIRTIO_BLK_T_FLUSH:
        // A flush covers the writes before it: submit them first (virtio_blk_handle_flush).
        this.submitMultireq(t0);
        run(this.blk.flush(t0).then(() => VIRTIO_BLK_S_OK));
        return;
      case VIRTIO_BLK_T_GET_ID: {
        const serial = new TextEncoder().encode(this.opts.serial ?? "");
        const n = Math.min(serial.length + 1, dataIn.len, VIRTIO_BLK_ID_BYTES);
        const id = new Uint8Array(n);
        id.set(serial.subarray(0, n));
        scatter(t, dataIn.bufs, id);
        finish(VIRTIO_BLK_S_OK);
        return;
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES: {
        const zeroes = type === VIRTIO_BLK_T_WRITE_ZEROES;
        if (outLen - 16 < 16) throw new VirtqueueBroken("virtio-blk discard/write_zeroes header too short");
        const seg = new DataView(gather(t, out, 16, 16).buffer);
        const segSector = seg.getUint32(0, true) + seg.getUint32(4, true) * 0x100000000;
        const num = seg.getUint32(8, true);
        const flags = seg.getUint32(12, true);
        if (!t.driverHasFeature(zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD) || (zeroes ? flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : flags) !== 0) {
          finish(VIRTIO_BLK_S_UNSUPP);
          return;
        }
        const bytes = num * SECTOR;
        if (!this.rangeOk(segSector, bytes) || num > BDRV_REQUEST_MAX_SECTORS) {
          if (zeroes) this.blk.stats.invalid(BlockAcctType.WRITE);
          finish(VIRTIO_BLK_S_IOERR);
          return;
        }
        if (this.blk.readOnly) {
          finish(VIRTIO_BLK_S_IOERR);
          return;
        }
        if (zeroes) run(this.blk.writeZeroes(segSector * SECTOR, bytes, (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0, t0).then(() => VIRTIO_BLK_S_OK));
        else run(this.blk.discard(segSector * SECTOR, bytes, false, t0).then(() => VIRTIO_BLK_S_OK));
        return;
      }
      default:
        finish(VIRTIO_BLK_S_UNSUPP);
    }
  }

  /** virtio_blk_sect_range_ok: whole sectors, inside the disk. */
  private rangeOk(sector: number, size: number): boolean {
    if (size % SECTOR !== 0) return false;
    const total = Math.floor(this.blk.size / SECTOR);
    return sector <= total && size / SECTOR <= total - sector;
  }

  /** The write cache flag (config `writeback`, changeable with CONFIG_WCE). */
  get writeback(): boolean {
    return this.s.writeback;
  }

  saveState(): VirtioBlkState {
    if (this.inFlight) throw new Error("virtio-blk: requests still in flight; drain() before saving");
    return this.s;
  }

  adoptState(s: VirtioBlkState): void {
    this.s = s;
    this.updateConfig();
  }
}

/** Copies `len` bytes starting `skip` bytes into the readable buffers. */
function gather(t: VirtioTransport, bufs: { addr: number; len: number }[], skip: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let got = 0;
  for (const b of bufs) {
    if (got >= len) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const n = Math.min(b.len - skip, len - got);
    t.ram.dmaRead(b.addr + skip, out.subarray(got, got + n));
    got += n;
    skip = 0;
  }
  return out;
}

/** Writes `data` into the writable buffers in order (DMA: marks the pages dirty). */
function scatter(t: VirtioTransport, bufs: { addr: number; len: number }[], data: Uint8Array): void {
  let put = 0;
  for (const b of bufs) {
    if (put >= data.length) break;
    const n = Math.min(b.len, data.length - put);
    t.ram.dmaWrite(b.addr, data.subarray(put, put + n));
    put += n;
  }
}
