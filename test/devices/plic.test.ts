import { describe, expect, it } from "vitest";
import { Plic } from "../../devices/plic.js";

function setup() {
  const lines = [false, false];
  const plic = new Plic((ctx, level) => {
    lines[ctx] = level;
  });
  return { plic, lines };
}
const PRIORITY = (irq: number) => 4 * irq;
const ENABLE = (ctx: number) => 0x2000 + 0x80 * ctx;
const THRESHOLD = (ctx: number) => 0x200000 + 0x1000 * ctx;
const CLAIM = (ctx: number) => THRESHOLD(ctx) + 4;

describe("PLIC", () => {
  it("asserts a context only for pending, enabled sources above its threshold", () => {
    const { plic, lines } = setup();
    plic.setLevel(10, true);
    expect(plic.read(0x1000, 4)).toBe(1 << 10);
    expect(lines).toEqual([false, false]);
    plic.write(ENABLE(1), 4, 1 << 10);
    expect(lines).toEqual([false, false]); // priority 0 never fires
    plic.write(PRIORITY(10), 4, 3);
    expect(lines).toEqual([false, true]);
    plic.write(THRESHOLD(1), 4, 3);
    expect(lines).toEqual([false, false]);
    plic.write(THRESHOLD(1), 4, 2);
    expect(lines).toEqual([false, true]);
  });

  it("claims the highest priority (lowest id on ties), and re-pends a completed source whose line is still high", () => {
    const { plic, lines } = setup();
    for (const irq of [3, 5, 7]) {
      plic.write(PRIORITY(irq), 4, irq === 7 ? 2 : 5);
      plic.setLevel(irq, true);
    }
    plic.write(ENABLE(0), 4, (1 << 3) | (1 << 5) | (1 << 7));
    expect(plic.read(CLAIM(0), 4)).toBe(3);
    expect(plic.read(CLAIM(0), 4)).toBe(5);
    expect(plic.read(CLAIM(0), 4)).toBe(7);
    expect(plic.read(CLAIM(0), 4)).toBe(0);
    expect(lines[0]).toBe(false);
    plic.setLevel(5, false);
    plic.write(CLAIM(0), 4, 5);
    plic.write(CLAIM(0), 4, 3);
    expect(lines[0]).toBe(true);
    expect(plic.read(CLAIM(0), 4)).toBe(3);
  });

  it("masks priorities to 3 bits and ignores writes to pending", () => {
    const { plic } = setup();
    plic.write(PRIORITY(1), 4, 0xff);
    expect(plic.read(PRIORITY(1), 4)).toBe(7);
    plic.write(0x1000, 4, 0xffffffff);
    expect(plic.read(0x1000, 4)).toBe(0);
  });
});
