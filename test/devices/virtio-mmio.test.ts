import { describe, expect, it } from "vitest";
import { VirtioMmio } from "../../devices/virtio-mmio.js";
import { TestIrq, TestRam } from "./virtio-test-ram.js";
import { loadStateBytes, saveStateBytes } from "../../src/migration/vmstate.js";

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

import type { VirtioBackend, VirtioTransport } from "../../devices/virtio-mmio.js";

/** A backend with one queue that echoes every chain back with len 0. */
class EchoBackend implements VirtioBackend {
  readonly deviceId = 42;
  readonly numQueues = 1;
  readonly features: readonly [number, number] = [1 << 3, 0];
  readonly configSize = 8;
  config = new Uint8Array(8).fill(0xab);
  t!: VirtioTransport;
  resets = 0;
  attach(t: VirtioTransport): void {
    this.t = t;
  }
  configRead(off: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.config[off + i];
    return v;
  }
  configWrite(off: number, _size: 1 | 2 | 4, value: number): void {
    this.config[off] = value & 0xff;
  }
  queueNotify(i: number): void {
    const q = this.t.queue(i)!;
    for (let c = q.pop(); c; c = q.pop()) this.t.complete(q, c.head, 0, this.t.epoch);
  }
  reset(): void {
    this.resets++;
  }
}

describe("virtio-mmio with a device", () => {
  const setup = (): { dev: VirtioMmio; irq: TestIrq; be: EchoBackend; ram: TestRam } => {
    const ram = new TestRam(0x80000000, 65536);
    const irq = new TestIrq();
    const be = new EchoBackend();
    return { dev: new VirtioMmio(ram, irq, be), irq, be, ram };
  };

  it("reports QueueNumMax 1024 for an existing queue and 0 beyond", () => {
    const { dev } = setup();
    expect(dev.read(0x34, 4)).toBe(1024);
    dev.write(0x30, 4, 1);
    expect(dev.read(0x34, 4)).toBe(0);
  });

  it("offers device features plus VERSION_1 and INDIRECT_DESC, selected by DeviceFeaturesSel", () => {
    const { dev } = setup();
    expect(dev.read(0x10, 4)).toBe(((1 << 3) | (1 << 28)) >>> 0);
    dev.write(0x14, 4, 1);
    expect(dev.read(0x10, 4)).toBe(1);
    dev.write(0x14, 4, 2);
    expect(dev.read(0x10, 4)).toBe(0);
  });

  it("reads config space little-endian and out of range as all ones", () => {
    const { dev } = setup();
    expect(dev.read(0x100, 4)).toBe(0xabababab);
    expect(dev.read(0x106, 2)).toBe(0xabab);
    expect(dev.read(0x108, 1)).toBe(0xff);
    expect(dev.read(0x106, 4)).toBe(0xffffffff);
  });

  it("raises the used interrupt, holds it until acknowledged, and a reset clears everything", () => {
    const { dev, irq, ram, be } = setup();
    const w = (o: number, v: number): void => dev.write(o, 4, v);
    w(0x70, 1);
    w(0x70, 3);
    w(0x24, 1);
    w(0x20, 1);
    w(0x70, 11);
    w(0x38, 8);
    w(0x80, 0x80001000);
    w(0x90, 0x80002000);
    w(0xa0, 0x80003000);
    w(0x44, 1);
    w(0x70, 15);
    ram.store32(0x80001000, 0x80004000);
    ram.store32(0x80001008, 16);
    ram.store16(0x8000100c, 0);
    ram.store16(0x80002004, 0);
    ram.store16(0x80002002, 1);
    w(0x50, 0);
    expect(irq.level).toBe(true);
    expect(dev.read(0x60, 4)).toBe(1);
    expect(ram.load16(0x80003002)).toBe(1);
    w(0x64, 1);
    expect(irq.level).toBe(false);
    const saved = saveStateBytes(dev.vmsd, dev.saveState());
    w(0x70, 0);
    expect(be.resets).toBe(1);
    expect(dev.read(0x44, 4)).toBe(0);
    expect(dev.read(0x70, 4)).toBe(0);
    dev.adoptState(loadStateBytes(dev.vmsd, dev.vmsd.version_id, saved, dev.saveState()));
    expect(dev.read(0x44, 4)).toBe(1);
    expect(dev.read(0x70, 4)).toBe(15);
  });

  it("ignores non-32-bit register accesses, as QEMU does", () => {
    const { dev } = setup();
    expect(dev.read(0x000, 2)).toBe(0);
    dev.write(0x070, 1, 1);
    expect(dev.read(0x070, 4)).toBe(0);
  });
});
