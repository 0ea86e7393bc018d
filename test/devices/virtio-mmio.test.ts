import { describe, expect, it } from "vitest";
import { VirtioMmio } from "../../devices/virtio-mmio.js";
import { TestIrq, TestRam } from "./virtio-test-ram.js";

describe("virtio-mmio empty slot", () => {
  const slot = new VirtioMmio(new TestRam(0x80000000, 4096), new TestIrq(), null);

  it("answers magic, version 2 and QEMU's vendor id, device id 0", () => {
    expect(slot.read(0x000, 4)).toBe(0x74726976);
    expect(slot.read(0x004, 4)).toBe(2);
    expect(slot.read(0x008, 4)).toBe(0);
    expect(slot.read(0x00c, 4)).toBe(0x554d4551);
  });

  it("reads every other register and config space as zero", () => {
    for (let off = 0x10; off < 0x200; off += 4) if (off !== 0x0c) expect(slot.read(off, 4)).toBe(0);
    expect(slot.read(0x034, 4)).toBe(0);
  });

  it("keeps the low bytes on narrow reads, as QEMU's memory core does", () => {
    expect(slot.read(0x000, 1)).toBe(0x76);
    expect(slot.read(0x000, 2)).toBe(0x6976);
    expect(slot.read(0x001, 1)).toBe(0);
  });

  it("ignores writes, including a status write", () => {
    slot.write(0x070, 4, 0xf);
    slot.write(0x030, 4, 1);
    expect(slot.read(0x070, 4)).toBe(0);
    expect(slot.read(0x000, 4)).toBe(0x74726976);
  });
});
