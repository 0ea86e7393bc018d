import { describe, expect, it } from "vitest";
import { GoldfishRtc } from "../../devices/goldfish-rtc.js";

describe("goldfish RTC", () => {
  it("reads 64-bit nanoseconds, TIME_LOW latching the high half, and lets the guest set the clock", () => {
    let t = 0x1234_5678_9abc_def0n;
    const rtc = new GoldfishRtc({ set: () => {} }, () => t);
    expect(rtc.read(0, 4)).toBe(0x9abcdef0);
    t += 0x1_0000_0000n;
    expect(rtc.read(4, 4)).toBe(0x12345678);
    rtc.write(4, 4, 0);
    rtc.write(0, 4, 100);
    expect(rtc.read(0, 4)).toBe(100);
    expect(rtc.read(4, 4)).toBe(0);
  });

  it("fires the alarm on IRQ 11's line when enabled, until cleared", () => {
    let t = 1_000n;
    const irq = { level: false };
    const rtc = new GoldfishRtc({ set: (l) => (irq.level = l) }, () => t);
    rtc.write(0x10, 4, 1);
    rtc.write(0x0c, 4, 0);
    rtc.write(0x08, 4, 2_000);
    expect(rtc.read(0x18, 4)).toBe(1);
    expect(rtc.alarmDelayNs()).toBe(1_000);
    rtc.poll();
    expect(irq.level).toBe(false);
    t = 2_000n;
    rtc.poll();
    expect(irq.level).toBe(true);
    expect(rtc.read(0x18, 4)).toBe(0);
    rtc.write(0x1c, 4, 1);
    expect(irq.level).toBe(false);
  });
});
