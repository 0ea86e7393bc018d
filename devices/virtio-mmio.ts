// The virtio-mmio transport, version 2 ("modern", virtio 1.1 §4.2.2), as QEMU 7.2 runs it with
// force-legacy=false. With no backend plugged in the slot answers like QEMU's empty slot
// (hw/virtio/virtio-mmio.c): magic, version and vendor read back, everything else reads 0,
// writes are ignored, so a driver probes it and finds device id 0 ("nothing here").

import type { GuestRam, IrqLine, Migratable, MmioDevice } from "./device.js";
import type { VMStateDescription, VMStateField } from "../src/migration/vmstate.js";
import { validateRing, Virtqueue, VirtqueueBroken, VIRTQUEUE_MAX_SIZE, VIRTQUEUE_VMSD, type VirtqueueState } from "./virtqueue.js";

export const VIRT_MAGIC = 0x74726976; // "virt"
export const VIRT_VERSION = 2;
export const VIRT_VENDOR = 0x554d4551; // "QEMU"

// Register offsets, virtio 1.1 §4.2.2 table 4.1.
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;
/** QEMU maps 0x200 bytes per slot. */
export const VIRTIO_MMIO_SIZE = 0x200;

// Device status bits, virtio 1.1 §2.1.
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// Interrupt status bits, §4.2.2.
export const VIRTIO_MMIO_INT_VRING = 1;
export const VIRTIO_MMIO_INT_CONFIG = 2;

const MASK32 = 0xffffffffn;

// Transport feature bits (§6), numbered from 0 across both 32-bit words.
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_F_VERSION_1 = 32;

/** What a virtio device model (virtio-blk, ...) provides to the transport. */
export interface VirtioBackend {
  /** Virtio device id (§5): 2 for a block device. */
  readonly deviceId: number;
  readonly numQueues: number;
  /** Device-specific feature bits as [bits 0-31, bits 32-63]; the transport adds its own. */
  readonly features: readonly [number, number];
  /** Called once when plugged; the backend keeps the transport for queues and completions. */
  attach(transport: VirtioTransport): void;
  /** Little-endian read of `size` bytes of config space at `offset` (range already checked). */
  configRead(offset: number, size: 1 | 2 | 4): number;
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void;
  readonly configSize: number;
  /** The driver kicked queue `index` (ready). May throw VirtqueueBroken from Virtqueue.pop. */
  queueNotify(index: number): void;
  /** Device reset (status 0): forget in-flight work; late completions are dropped by epoch. */
  reset(): void;
  /** Resolves when no request is in flight (QEMU's blk_drain); absent = nothing is ever in flight. */
  drain?(): Promise<void>;
  /** The device's own migratable state, nested in the transport's description. */
  readonly vmsd?: VMStateDescription<never>;
  saveState?(): object;
  adoptState?(s: never): void;
}

/** What the transport offers a backend. */
export interface VirtioTransport {
  readonly ram: GuestRam;
  /** The queue if it exists and the driver set it ready, else null. */
  queue(index: number): Virtqueue | null;
  /** Increases on every reset; pass the value seen at pop time to `complete`. */
  readonly epoch: number;
  /**
   * Completion path: returns the chain in the used ring and raises the used-buffer
   * interrupt. Dropped when the device was reset since `epoch` (a stale completion).
   */
  complete(queue: Virtqueue, head: number, len: number, epoch: number): void;
  /** The device cannot go on (§2.1.2): set DEVICE_NEEDS_RESET and tell the driver. */
  needsReset(reason: string): void;
  /** Config space changed: bump ConfigGeneration and raise the config interrupt. */
  configChanged(): void;
  driverHasFeature(bit: number): boolean;
}

/** The transport's migratable state (QEMU's VirtIOMMIOProxy registers plus the queues). */
export interface VirtioMmioState {
  status: number;
  isr: number;
  config_generation: number;
  device_features_sel: number;
  driver_features_sel: number;
  /** Driver-accepted feature bits, words 0 and 1 (QEMU's guest_features[2]). */
  driver_features: number[];
  queue_sel: number;
  /** The same objects the Virtqueues hold. */
  queues: VirtqueueState[];
  /** The backend's state object, or null for an empty slot. */
  backend: object | null;
}

/**
 * The transport's description for a slot with `numQueues` queues and the given backend
 * description (QEMU's virtio_mmio with its virtio_mmio/state subsection; the device's own
 * state, which QEMU sends through the virtio bus, is nested here as a struct).
 */
export function virtioMmioVmsd(numQueues: number, backend: VMStateDescription<never> | null): VMStateDescription<VirtioMmioState> {
  const fields: VMStateField<VirtioMmioState>[] = [
    { name: "status", type: "uint32", range: [0, 0xff] },
    { name: "isr", type: "uint32", range: [0, VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG] },
    { name: "config_generation", type: "uint32" },
    { name: "device_features_sel", type: "uint32" },
    { name: "driver_features_sel", type: "uint32" },
    { name: "driver_features", type: "uint32", array: 2 },
    { name: "queue_sel", type: "uint32", range: [0, VIRTQUEUE_MAX_SIZE - 1] },
  ];
  if (numQueues > 0) fields.push({ name: "queues", type: "struct", vmsd: VIRTQUEUE_VMSD, array: numQueues });
  if (backend) fields.push({ name: "backend", type: "struct", vmsd: backend });
  return { name: "virtio_mmio", version_id: 1, minimum_version_id: 1, fields };
}

function transportPowerOn(): VirtioMmioState {
  return {
    status: 0,
    isr: 0,
    config_generation: 0,
    device_features_sel: 0,
    driver_features_sel: 0,
    driver_features: [0, 0],
    queue_sel: 0,
    queues: [],
    backend: null,
  };
}

export class VirtioMmio implements MmioDevice, VirtioTransport, Migratable<VirtioMmioState> {
  readonly name: string;
  readonly vmsd: VMStateDescription<VirtioMmioState>;
  private s = transportPowerOn();
  /** Increases on every reset, so that completions for requests from before it are dropped. */
  epoch = 0;
  /** Last reason the device entered NEEDS_RESET (for tracing and tests). */
  brokenReason: string | null = null;
  private readonly queues: Virtqueue[] = [];
  private readonly offered: [number, number];

  constructor(
    readonly ram: GuestRam,
    private readonly irq: IrqLine,
    private readonly backend: VirtioBackend | null,
  ) {
    this.name = backend ? `virtio-mmio(${backend.deviceId})` : "virtio-mmio";
    const f = backend?.features ?? [0, 0];
    this.offered = [(f[0] | (1 << VIRTIO_RING_F_INDIRECT_DESC)) >>> 0, (f[1] | (1 << (VIRTIO_F_VERSION_1 - 32))) >>> 0];
    if (backend) {
      for (let i = 0; i < backend.numQueues; i++) this.queues.push(new Virtqueue(ram, i));
      backend.attach(this);
    }
    this.s.queues = this.queues.map((q) => q.s);
    this.vmsd = virtioMmioVmsd(this.queues.length, backend?.vmsd ?? null);
  }

  get status(): number {
    return this.s.status;
  }

  get isr(): number {
    return this.s.isr;
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (!this.backend) return emptySlotRead(offset, size);
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const off = offset - VIRTIO_MMIO_CONFIG;
      // QEMU's virtio_config_modern_read*: out of range reads as all ones.
      if (off + size > this.backend.configSize) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
      return this.backend.configRead(off, size) >>> 0;
    }
    if (size !== 4) return 0;
    const q = this.queues[this.s.queue_sel];
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRT_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return VIRT_VERSION;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.backend.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRT_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return this.s.device_features_sel < 2 ? this.offered[this.s.device_features_sel] : 0;
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return q ? VIRTQUEUE_MAX_SIZE : 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return q?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.s.isr;
      case VIRTIO_MMIO_STATUS:
        return this.s.status;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        return q ? Number(q.s.desc & MASK32) : 0;
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
        return q ? Number(q.s.avail & MASK32) : 0;
      case VIRTIO_MMIO_QUEUE_USED_LOW:
        return q ? Number(q.s.used & MASK32) : 0;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
        // No shared memory regions: QEMU answers -1, which Linux reads as "none".
        return 0xffffffff;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return this.s.config_generation;
      default:
        return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (!this.backend) return;
    value >>>= 0;
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const off = offset - VIRTIO_MMIO_CONFIG;
      if (off + size <= this.backend.configSize) this.backend.configWrite(off, size, value);
      return;
    }
    if (size !== 4) return;
    const q = this.queues[this.s.queue_sel];
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.s.device_features_sel = value;
        break;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        if (this.s.driver_features_sel < 2 && !(this.s.status & VIRTIO_CONFIG_S_FEATURES_OK)) this.s.driver_features[this.s.driver_features_sel] = value;
        break;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.s.driver_features_sel = value;
        break;
      case VIRTIO_MMIO_QUEUE_SEL:
        if (value < VIRTQUEUE_MAX_SIZE) this.s.queue_sel = value;
        break;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (q && !q.ready) q.s.num = value;
        break;
      case VIRTIO_MMIO_QUEUE_READY:
        if (q) this.setQueueReady(q, value !== 0);
        break;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        this.notify(value);
        break;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.s.isr &= ~value;
        this.updateIrq();
        break;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(value & 0xff);
        break;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      case VIRTIO_MMIO_QUEUE_USED_LOW:
        if (q && !q.ready) {
          const lo = BigInt(value);
          if (offset === VIRTIO_MMIO_QUEUE_DESC_LOW) q.s.desc = (q.s.desc & ~MASK32) | lo;
          else if (offset === VIRTIO_MMIO_QUEUE_AVAIL_LOW) q.s.avail = (q.s.avail & ~MASK32) | lo;
          else q.s.used = (q.s.used & ~MASK32) | lo;
          q.refresh();
        }
        break;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      case VIRTIO_MMIO_QUEUE_USED_HIGH:
        // Kept as written; RV32 guest RAM is below 4 GiB, so a non-zero high word makes the
        // ring fail validation when the driver sets it ready.
        if (q && !q.ready) {
          const hi = BigInt(value) << 32n;
          if (offset === VIRTIO_MMIO_QUEUE_DESC_HIGH) q.s.desc = hi | (q.s.desc & MASK32);
          else if (offset === VIRTIO_MMIO_QUEUE_AVAIL_HIGH) q.s.avail = hi | (q.s.avail & MASK32);
          else q.s.used = hi | (q.s.used & MASK32);
          q.refresh();
        }
        break;
      default:
        break;
    }
  }

  queue(index: number): Virtqueue | null {
    const q = this.queues[index];
    return q && q.ready ? q : null;
  }

  complete(queue: Virtqueue, head: number, len: number, epoch: number): void {
    if (epoch !== this.epoch || !queue.ready || this.s.status & VIRTIO_CONFIG_S_NEEDS_RESET) return;
    queue.pushUsed(head, len);
    if (queue.wantsInterrupt()) {
      this.s.isr |= VIRTIO_MMIO_INT_VRING;
      this.updateIrq();
    }
  }

  needsReset(reason: string): void {
    this.brokenReason = reason;
    if (this.s.status & VIRTIO_CONFIG_S_NEEDS_RESET) return;
    this.s.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (this.s.status & VIRTIO_CONFIG_S_DRIVER_OK) this.configChanged();
  }

  configChanged(): void {
    this.s.config_generation = (this.s.config_generation + 1) >>> 0;
    this.s.isr |= VIRTIO_MMIO_INT_CONFIG;
    this.updateIrq();
  }

  driverHasFeature(bit: number): boolean {
    return ((this.s.driver_features[bit >> 5] >>> (bit & 31)) & 1) === 1;
  }

  private setQueueReady(q: Virtqueue, ready: boolean): void {
    if (!ready) {
      q.s.ready = false;
      return;
    }
    const why = q.validate();
    if (why) {
      this.needsReset(`queue ${q.index}: ${why}`);
      return;
    }
    q.s.ready = true;
  }

  private notify(index: number): void {
    if (this.s.status & VIRTIO_CONFIG_S_NEEDS_RESET || !(this.s.status & VIRTIO_CONFIG_S_DRIVER_OK)) return;
    if (!this.queue(index) || !this.backend) return;
    try {
      this.backend.queueNotify(index);
    } catch (e) {
      // A broken ring, or anything else a guest managed to provoke: the device stops, the VMM
      // does not (DESIGN §8).
      this.needsReset(`queue ${index}: ${e instanceof VirtqueueBroken ? "" : "device error: "}${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    // §2.2.2 / §3.1.1: FEATURES_OK sticks only for a subset of what we offered, with VERSION_1.
    if (value & VIRTIO_CONFIG_S_FEATURES_OK && !(this.s.status & VIRTIO_CONFIG_S_FEATURES_OK)) {
      const ok =
        (this.s.driver_features[0] & ~this.offered[0]) === 0 &&
        (this.s.driver_features[1] & ~this.offered[1]) === 0 &&
        this.driverHasFeature(VIRTIO_F_VERSION_1);
      if (!ok) value &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    this.s.status = (value & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (this.s.status & VIRTIO_CONFIG_S_NEEDS_RESET);
  }

  /** Device reset (status written 0), also what a machine reset does. */
  reset(): void {
    this.epoch++;
    this.s.status = 0;
    this.s.isr = 0;
    this.brokenReason = null;
    this.s.device_features_sel = this.s.driver_features_sel = 0;
    this.s.driver_features = [0, 0];
    this.s.queue_sel = 0;
    for (const q of this.queues) q.reset();
    this.s.queues = this.queues.map((q) => q.s);
    this.backend?.reset();
    this.updateIrq();
  }

  private updateIrq(): void {
    this.irq.set(this.s.isr !== 0);
  }

  saveState(): VirtioMmioState {
    this.s.queues = this.queues.map((q) => q.s);
    this.s.backend = this.backend?.saveState?.() ?? null;
    return this.s;
  }

  /** A queue that claims to be ready must pass the checks QueueReady makes, against this RAM. */
  checkState(s: VirtioMmioState): string | null {
    for (let i = 0; i < s.queues.length; i++) {
      if (!s.queues[i].ready) continue;
      const why = validateRing(this.ram, s.queues[i]);
      if (why) return `queues[${i}]: ${why}`;
    }
    return null;
  }

  adoptState(s: VirtioMmioState): void {
    this.s = s;
    this.queues.forEach((q, i) => q.adopt(s.queues[i]));
    if (this.backend?.adoptState && s.backend) this.backend.adoptState(s.backend as never);
    this.updateIrq();
  }
}

/**
 * QEMU's empty slot: only magic, version and vendor id read back. QEMU's memory core
 * hands narrower reads to the same handler and keeps the low bytes, so a 1-byte read
 * of offset 0 gives 0x76 ('v') and reads at unaligned offsets give 0.
 */
function emptySlotRead(offset: number, size: 1 | 2 | 4): number {
  let v: number;
  switch (offset) {
    case VIRTIO_MMIO_MAGIC_VALUE:
      v = VIRT_MAGIC;
      break;
    case VIRTIO_MMIO_VERSION:
      v = VIRT_VERSION;
      break;
    case VIRTIO_MMIO_VENDOR_ID:
      v = VIRT_VENDOR;
      break;
    default:
      return 0;
  }
  return size === 4 ? v : v & ((1 << (8 * size)) - 1);
}
