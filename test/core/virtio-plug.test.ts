// The board plugs the block layer's drives into virtio-mmio slots, as QEMU's virt does.
import { describe, expect, it } from "vitest";
import { BlockBackend } from "../../src/block/backend.js";
import type { BlockDriver } from "../../src/block/driver.js";
import { plugVirtioDrives } from "../../src/core/virtio-plug.js";

const drv = { format: "raw", filename: "x", readOnly: false, backing: null, size: 1 << 20 } as unknown as BlockDriver;

describe("plugVirtioDrives", () => {
  it("fills the highest slot first and names devices by id or by anonymous QOM path", () => {
    const a = new BlockBackend("virtio0", drv);
    const b = new BlockBackend("d1", drv);
    const c = new BlockBackend("virtio2", drv);
    const { virtio, attachments } = plugVirtioDrives([
      { backend: a, deviceId: undefined },
      { backend: b, deviceId: "vd1" },
      { backend: c, deviceId: undefined },
    ]);
    expect(virtio.map((v) => v !== null)).toEqual([false, false, false, false, false, true, true, true]);
    expect(attachments.map((x) => x.qomPath)).toEqual(["/machine/peripheral-anon/device[0]", "/machine/peripheral/vd1", "/machine/peripheral-anon/device[1]"]);
    expect(virtio[7]).toBe(attachments[0]?.ops);
    expect(virtio[5]).toBe(attachments[2]?.ops);
  });

  it("refuses more drives than the board has slots", () => {
    const drives = Array.from({ length: 3 }, (_, i) => ({ backend: new BlockBackend(`d${i}`, drv), deviceId: undefined }));
    expect(() => plugVirtioDrives(drives, 2)).toThrow("no free virtio-mmio slot: the board has 2");
  });
});
