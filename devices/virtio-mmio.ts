// The virtio-mmio transport, version 2 ("modern", virtio 1.1 §4.2.2), as QEMU 7.2 runs it with
// force-legacy=false. With no backend plugged in the slot answers like QEMU's empty slot
// (hw/virtio/virtio-mmio.c): magic, version and vendor read back, everything else reads 0,
// writes are ignored, so a driver probes it and finds device id 0 ("nothing here").

import type { GuestRam, IrqLine, Migratable, MmioDevice } from "./device.js";
import { Virtqueue, VirtqueueBroken, VIRTQUEUE_MAX_SIZE, type VirtqueueState } from "./virtqueue.js";

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
  save?(): unknown;
  load?(state: unknown): void;
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

export interface VirtioMmioState {
  version: 1;
  status: number;
  isr: number;
  configGeneration: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeatures: [number, number];
  queueSel: number;
  queues: VirtqueueState[];
  backend: unknown;
}

export class VirtioMmio implements MmioDevice, VirtioTransport, Migratable<VirtioMmioState> {
  readonly name: string;
  status = 0;
  isr = 0;
  configGeneration = 0;
  epoch = 0;
  /** Last reason the device entered NEEDS_RESET (for tracing and tests). */
  brokenReason: string | null = null;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures: [number, number] = [0, 0];
  private queueSel = 0;
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
    const q = this.queues[this.queueSel];
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
        return this.deviceFeaturesSel < 2 ? this.offered[this.deviceFeaturesSel] : 0;
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return q ? VIRTQUEUE_MAX_SIZE : 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return q?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.isr;
      case VIRTIO_MMIO_STATUS:
        return this.status;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        return q ? q.desc >>> 0 : 0;
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
        return q ? q.avail >>> 0 : 0;
      case VIRTIO_MMIO_QUEUE_USED_LOW:
        return q ? q.used >>> 0 : 0;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
        // No shared memory regions: QEMU answers -1, which Linux reads as "none".
        return 0xffffffff;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return this.configGeneration;
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
    const q = this.queues[this.queueSel];
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = value;
        break;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        if (this.driverFeaturesSel < 2 && !(this.status & VIRTIO_CONFIG_S_FEATURES_OK)) this.driverFeatures[this.driverFeaturesSel] = value;
        break;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = value;
        break;
      case VIRTIO_MMIO_QUEUE_SEL:
        if (value < VIRTQUEUE_MAX_SIZE) this.queueSel = value;
        break;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (q && !q.ready) q.num = value;
        break;
      case VIRTIO_MMIO_QUEUE_READY:
        if (q) this.setQueueReady(q, value !== 0);
        break;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        this.notify(value);
        break;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.isr &= ~value;
        this.updateIrq();
        break;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(value & 0xff);
        break;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      case VIRTIO_MMIO_QUEUE_USED_LOW:
        if (q && !q.ready) {
          if (offset === VIRTIO_MMIO_QUEUE_DESC_LOW) q.desc = value;
          else if (offset === VIRTIO_MMIO_QUEUE_AVAIL_LOW) q.avail = value;
          else q.used = value;
        }
        break;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      case VIRTIO_MMIO_QUEUE_USED_HIGH:
        // RV32 guest RAM is below 4 GiB: a non-zero high word can only point outside it.
        if (q && !q.ready && value !== 0) {
          if (offset === VIRTIO_MMIO_QUEUE_DESC_HIGH) q.desc = -1;
          else if (offset === VIRTIO_MMIO_QUEUE_AVAIL_HIGH) q.avail = -1;
          else q.used = -1;
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
    if (epoch !== this.epoch || !queue.ready || this.status & VIRTIO_CONFIG_S_NEEDS_RESET) return;
    queue.pushUsed(head, len);
    if (queue.wantsInterrupt()) {
      this.isr |= VIRTIO_MMIO_INT_VRING;
      this.updateIrq();
    }
  }

  needsReset(reason: string): void {
    this.brokenReason = reason;
    if (this.status & VIRTIO_CONFIG_S_NEEDS_RESET) return;
    this.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK) this.configChanged();
  }

  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.isr |= VIRTIO_MMIO_INT_CONFIG;
    this.updateIrq();
  }

  driverHasFeature(bit: number): boolean {
    return ((this.driverFeatures[bit >> 5] >>> (bit & 31)) & 1) === 1;
  }

  private setQueueReady(q: Virtqueue, ready: boolean): void {
    if (!ready) {
      q.ready = false;
      return;
    }
    const why = q.validate();
    if (why) {
      this.needsReset(`queue ${q.index}: ${why}`);
      return;
    }
    q.ready = true;
  }

  private notify(index: number): void {
    if (this.status & VIRTIO_CONFIG_S_NEEDS_RESET || !(this.status & VIRTIO_CONFIG_S_DRIVER_OK)) return;
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
    if (value & VIRTIO_CONFIG_S_FEATURES_OK && !(this.status & VIRTIO_CONFIG_S_FEATURES_OK)) {
      const ok =
        (this.driverFeatures[0] & ~this.offered[0]) === 0 &&
        (this.driverFeatures[1] & ~this.offered[1]) === 0 &&
        this.driverHasFeature(VIRTIO_F_VERSION_1);
      if (!ok) value &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    this.status = (value & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (this.status & VIRTIO_CONFIG_S_NEEDS_RESET);
  }

  /** Device reset (status written 0), also what a machine reset does. */
  reset(): void {
    this.epoch++;
    this.status = 0;
    this.isr = 0;
    this.brokenReason = null;
    this.deviceFeaturesSel = this.driverFeaturesSel = 0;
    this.driverFeatures = [0, 0];
    this.queueSel = 0;
    for (const q of this.queues) q.reset();
    this.backend?.reset();
    this.updateIrq();
  }

  private updateIrq(): void {
    this.irq.set(this.isr !== 0);
  }

  save(): VirtioMmioState {
    return {
      version: 1,
      status: this.status,
      isr: this.isr,
      configGeneration: this.configGeneration,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: [this.driverFeatures[0], this.driverFeatures[1]],
      queueSel: this.queueSel,
      queues: this.queues.map((q) => q.save()),
      backend: this.backend?.save?.() ?? null,
    };
  }

  load(s: VirtioMmioState): void {
    if (s.version !== 1) throw new Error(`virtio-mmio state version ${String(s.version)}, expected 1`);
    if (s.queues.length !== this.queues.length) throw new Error(`virtio-mmio state has ${s.queues.length} queues, device has ${this.queues.length}`);
    this.status = s.status;
    this.isr = s.isr;
    this.configGeneration = s.configGeneration;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.driverFeatures = [s.driverFeatures[0], s.driverFeatures[1]];
    this.queueSel = s.queueSel;
    s.queues.forEach((qs, i) => this.queues[i].load(qs));
    if (this.backend?.load) this.backend.load(s.backend);
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
