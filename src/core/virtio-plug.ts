// Plugging the block layer's drives into the board's virtio-mmio slots (QEMU: -device
// virtio-blk-device on the virt board's virtio-mmio buses). The block layer says which drives
// want a device; the board creates each VirtioBlk, picks its slot and names it in QOM.

import { VirtioBlk } from "../../devices/virtio-blk.js";
import type { VirtioBackend } from "../../devices/virtio-mmio.js";
import type { DeviceAttachment, DrivePlug } from "../block/blockdev.js";
import { VIRTIO_MMIO_COUNT } from "./board.js";

export interface VirtioPlugResult {
  /** virtio-mmio slot n's backend, as Machine takes it in `opts.virtio`. */
  virtio: (VirtioBackend | null)[];
  /** One per plugged drive, for BlockLayer.attachDevices. */
  attachments: DeviceAttachment[];
}

/**
 * QEMU plugs virtio-mmio devices into the highest free slot first (virt creates the buses
 * from the top address down, and qdev takes the first free one), so the first disk is slot 7.
 * Devices without `id=` are named /machine/peripheral-anon/device[N] in plug order.
 */
export function plugVirtioDrives(drives: readonly DrivePlug[], slots = VIRTIO_MMIO_COUNT): VirtioPlugResult {
  const virtio: (VirtioBackend | null)[] = Array.from({ length: slots }, () => null);
  const attachments: DeviceAttachment[] = [];
  let anon = 0;
  for (const { backend, deviceId } of drives) {
    const slot = virtio.lastIndexOf(null);
    if (slot < 0) throw new Error(`no free virtio-mmio slot: the board has ${slots}`);
    const qomPath = deviceId === undefined ? `/machine/peripheral-anon/device[${anon++}]` : `/machine/peripheral/${deviceId}`;
    const device = new VirtioBlk(backend);
    virtio[slot] = device;
    attachments.push({ backend, deviceId, qomPath, ops: device });
  }
  return { virtio, attachments };
}
