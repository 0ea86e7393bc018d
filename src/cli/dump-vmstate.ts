// `minivm run --dump-vmstate FILE` (QEMU's -dump-vmstate): write every VMState description the
// board migrates, as JSON in the shape QEMU's scripts/vmstate-static-checker.py reads, and exit
// without running a guest. Comparing two versions' dumps with that script tells whether a
// change to a description breaks migration between them.

import { writeFileSync } from "node:fs";
import { VIRTIO_BLK_VMSD } from "../../devices/virtio-blk.js";
import { Machine } from "../core/machine.js";
import type { VMStateDescription } from "../migration/vmstate.js";
import { dumpVmstate, type VmstateDump } from "../migration/vmstate-json.js";

/** QEMU's name for the board (the dump's `vmschkmachine`). */
const MACHINE_NAME = "virt";

export function vmstateDump(): VmstateDump {
  // A bare board: descriptions do not depend on RAM size, firmware or drives.
  const m = new Machine({ ramSize: 4 << 20, bios: null, serialOut: () => undefined });
  const types = m.vmstateTypes();
  // The disk's description travels nested in its transport's; QEMU lists the device type too.
  types.push({ typeName: "virtio-blk-device", vmsd: VIRTIO_BLK_VMSD as VMStateDescription<never> });
  return dumpVmstate(MACHINE_NAME, types);
}

export function writeVmstateDump(file: string): void {
  writeFileSync(file, JSON.stringify(vmstateDump(), null, 4) + "\n");
}
