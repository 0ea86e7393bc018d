// A split virtqueue as the device sees it (virtio 1.1 §2.6): descriptor table, available
// ring written by the driver, used ring written by the device. Everything read from guest
// memory is checked, because the driver may lie (§2.6.5: loops, out-of-range indices).

import type { GuestRam } from "./device.js";
import type { VMStateDescription } from "../src/migration/vmstate.js";

/** VIRTQUEUE_MAX_SIZE in QEMU (include/hw/virtio/virtio.h): also what QueueNumMax reports. */
export const VIRTQUEUE_MAX_SIZE = 1024;

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** avail->flags bit: the driver asks not to be interrupted (§2.6.7). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

/** One guest buffer of a descriptor chain. */
export interface VirtqBuffer {
  addr: number;
  len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE). */
  write: boolean;
}

/** A chain popped from the available ring. `bad` names a per-request defect. */
export interface VirtqChain {
  head: number;
  buffers: VirtqBuffer[];
  /** Set when a buffer lies outside RAM or readable follows writable; the request fails. */
  bad: string | null;
}

/** The ring state that migrates with the device (QEMU's VirtIOMMIOQueue plus the ring indices). */
export interface VirtqueueState {
  num: number;
  ready: boolean;
  /** Guest-physical ring addresses, all 64 bits the driver wrote (low and high registers). */
  desc: bigint;
  avail: bigint;
  used: bigint;
  last_avail_idx: number;
  used_idx: number;
}

/** One queue of a virtio-mmio transport, nested in its description. */
export const VIRTQUEUE_VMSD: VMStateDescription<VirtqueueState> = {
  name: "virtio_mmio/queue_state",
  version_id: 1,
  minimum_version_id: 1,
  fields: [
    { name: "num", type: "uint32", range: [0, VIRTQUEUE_MAX_SIZE] },
    { name: "ready", type: "bool" },
    { name: "desc", type: "uint64" },
    { name: "avail", type: "uint64" },
    { name: "used", type: "uint64" },
    { name: "last_avail_idx", type: "uint16" },
    { name: "used_idx", type: "uint16" },
  ],
};

export function virtqueuePowerOn(): VirtqueueState {
  return { num: 0, ready: false, desc: 0n, avail: 0n, used: 0n, last_avail_idx: 0, used_idx: 0 };
}

/** A 64-bit ring address as a number, or -1 when it lies above 4 GiB (never RV32 RAM). */
function addr32(a: bigint): number {
  return a <= 0xffffffffn ? Number(a) : -1;
}

/** Thrown (and caught by the transport) when the driver broke the ring itself: NEEDS_RESET. */
export class VirtqueueBroken extends Error {}

export class Virtqueue {
  /** The migratable state; the transport's state object holds the same object. */
  s: VirtqueueState = virtqueuePowerOn();
  // Ring addresses as numbers, refreshed whenever the state's addresses may have changed.
  private descN = 0;
  private availN = 0;
  private usedN = 0;

  constructor(
    private readonly ram: GuestRam,
    readonly index: number,
  ) {}

  get num(): number {
    return this.s.num;
  }

  get ready(): boolean {
    return this.s.ready;
  }

  /** Take a (loaded or reset) state object and re-derive the cached addresses. */
  adopt(s: VirtqueueState): void {
    this.s = s;
    this.refresh();
  }

  /** Re-derive the cached ring addresses from the state (after the driver wrote one). */
  refresh(): void {
    this.descN = addr32(this.s.desc);
    this.availN = addr32(this.s.avail);
    this.usedN = addr32(this.s.used);
  }

  reset(): void {
    this.adopt(virtqueuePowerOn());
  }

  /**
   * Checks the layout when the driver sets QueueReady (§2.6: sizes and alignments; split
   * rings need a power-of-2 size). Returns a reason string when it is unusable.
   */
  validate(): string | null {
    return validateRing(this.ram, this.s);
  }

  /** Number of chains the driver has made available and the device not yet taken. */
  pending(): number {
    const idx = this.ram.load16(this.availN + 2);
    const n = (idx - this.s.last_avail_idx) & 0xffff;
    if (n > this.num) throw new VirtqueueBroken(`avail idx ${idx} is ${n} ahead of ${this.s.last_avail_idx}, queue size ${this.num}`);
    return n;
  }

  /** Takes the next available chain, or null when the ring is empty. */
  pop(): VirtqChain | null {
    if (!this.ready || this.pending() === 0) return null;
    const slot = this.s.last_avail_idx % this.num;
    const head = this.ram.load16(this.availN + 4 + 2 * slot);
    this.s.last_avail_idx = (this.s.last_avail_idx + 1) & 0xffff;
    if (head >= this.num) throw new VirtqueueBroken(`descriptor head ${head} >= queue size ${this.num}`);
    const chain: VirtqChain = { head, buffers: [], bad: null };
    this.walk(this.descN, this.num, head, chain, false);
    return chain;
  }

  private walk(table: number, size: number, first: number, chain: VirtqChain, indirect: boolean): void {
    let i = first;
    let seen = 0;
    let sawWrite = false;
    for (;;) {
      if (++seen > size) throw new VirtqueueBroken("descriptor chain loops");
      const d = table + 16 * i;
      const addrLo = this.ram.load32(d);
      const addrHi = this.ram.load32(d + 4);
      const len = this.ram.load32(d + 8);
      const flags = this.ram.load16(d + 12);
      const next = this.ram.load16(d + 14);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        // §2.6.5.3.1: not nested, not combined with NEXT, a whole number of descriptors.
        if (indirect) throw new VirtqueueBroken("nested indirect descriptor");
        if (flags & VIRTQ_DESC_F_NEXT) throw new VirtqueueBroken("indirect descriptor with NEXT");
        if (len === 0 || len % 16 !== 0 || addrHi !== 0 || !this.ram.contains(addrLo, len)) {
          throw new VirtqueueBroken("indirect descriptor table outside RAM or of bad length");
        }
        this.walk(addrLo, len / 16, 0, chain, true);
        return;
      }
      const write = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (chain.bad === null) {
        if (addrHi !== 0 || !this.ram.contains(addrLo, len)) chain.bad = `buffer 0x${addrHi.toString(16)}${addrLo.toString(16).padStart(8, "0")}+${len} outside RAM`;
        else if (sawWrite && !write) chain.bad = "readable buffer after a writable one";
      }
      sawWrite ||= write;
      chain.buffers.push({ addr: addrLo, len, write });
      if (!(flags & VIRTQ_DESC_F_NEXT)) return;
      if (next >= size) throw new VirtqueueBroken(`descriptor next ${next} >= table size ${size}`);
      i = next;
    }
  }

  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);

  /**
   * Returns a chain to the driver; `len` is the number of bytes the device wrote. The used
   * ring is written with dmaWrite, like any device write, so migration sees its pages dirty.
   */
  pushUsed(head: number, len: number): void {
    const slot = this.s.used_idx % this.num;
    this.scratchView.setUint32(0, head, true);
    this.scratchView.setUint32(4, len >>> 0, true);
    this.ram.dmaWrite(this.usedN + 4 + 8 * slot, this.scratch);
    this.s.used_idx = (this.s.used_idx + 1) & 0xffff;
    // The element is in place before the index that publishes it (§2.6.8).
    this.scratchView.setUint16(0, this.s.used_idx, true);
    this.ram.dmaWrite(this.usedN + 2, this.scratch.subarray(0, 2));
  }

  /** §2.6.7.2 without EVENT_IDX: interrupt unless the driver set NO_INTERRUPT. */
  wantsInterrupt(): boolean {
    return (this.ram.load16(this.availN) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }
}

/**
 * The checks QueueReady makes (§2.6: sizes and alignments; split rings need a power-of-2
 * size; every ring inside RAM). Also applied to a loaded queue that claims to be ready.
 */
export function validateRing(ram: GuestRam, s: VirtqueueState): string | null {
  const n = s.num;
  if (n === 0 || n > VIRTQUEUE_MAX_SIZE || (n & (n - 1)) !== 0) return `queue size ${n} is not a power of 2 up to ${VIRTQUEUE_MAX_SIZE}`;
  const desc = addr32(s.desc);
  const avail = addr32(s.avail);
  const used = addr32(s.used);
  if (desc % 16 !== 0 || avail % 2 !== 0 || used % 4 !== 0) return "misaligned ring";
  if (desc < 0 || !ram.contains(desc, 16 * n)) return "descriptor table outside RAM";
  if (avail < 0 || !ram.contains(avail, 6 + 2 * n)) return "available ring outside RAM";
  if (used < 0 || !ram.contains(used, 6 + 8 * n)) return "used ring outside RAM";
  return null;
}
