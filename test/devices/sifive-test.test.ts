import { describe, expect, it } from "vitest";
import { BootRom } from "../../devices/bootrom.js";
import { SifiveTest, type FinisherEvent } from "../../devices/sifive-test.js";

describe("sifive_test finisher", () => {
  it("maps 0x5555, (code << 16) | 0x3333 and 0x7777 to QEMU's shutdown and reset requests", () => {
    const events: FinisherEvent[] = [];
    const t = new SifiveTest((e) => events.push(e));
    t.write(0, 4, 0x5555);
    t.write(0, 4, (42 << 16) | 0x3333);
    t.write(0, 4, 0x7777);
    t.write(0, 4, 0x1234);
    t.write(4, 4, 0x5555);
    expect(events).toEqual([
      { kind: "shutdown", code: 0, reason: "guest-shutdown" },
      { kind: "shutdown", code: 42, reason: "guest-panic" },
      { kind: "reset" },
    ]);
    expect(t.read()).toBe(0);
  });
});

describe("boot ROM", () => {
  it("holds QEMU 7.2's reset vector and fw_dynamic_info", () => {
    const rom = new BootRom({ startAddr: 0x80000000, fdtAddr: 0x87e00000, nextAddr: 0x80200000 });
    const words = Array.from({ length: 16 }, (_, i) => rom.read(i * 4, 4));
    expect(words).toEqual([
      0x00000297, 0x02828613, 0xf1402573, 0x0202a583, 0x0182a283, 0x00028067,
      0x80000000, 0, 0x87e00000, 0, 0x4942534f, 2, 0x80200000, 1, 0, 0,
    ]);
    rom.write();
    expect(rom.read(0, 4)).toBe(0x00000297);
  });
});
