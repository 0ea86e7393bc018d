import { describe, expect, it } from "vitest";
import { Clint } from "../../devices/clint.js";
import { CLINT_VMSD } from "../../devices/clint.js";
import { loadStateBytes, saveStateBytes } from "../../src/migration/vmstate.js";

function setup() {
  let now = 5_000_000;
  const state = { msip: false, mtip: false };
  const clint = new Clint({ setMsip: (l) => (state.msip = l), setMtip: (l) => (state.mtip = l) }, () => now);
  return { clint, state, advance: (ns: number) => (now += ns), now: () => now };
}

describe("CLINT", () => {
  it("counts mtime at 10 MHz from reset and raises MTIP when mtime reaches mtimecmp", () => {
    const { clint, state, advance, now } = setup();
    expect(clint.read(0xbff8, 4)).toBe(0);
    expect(state.mtip).toBe(true); // mtimecmp resets to 0, as QEMU's does
    clint.write(0x4004, 4, 0);
    clint.write(0x4000, 4, 1000);
    expect(state.mtip).toBe(false);
    expect(clint.nextDeadlineNs()).toBe(now() + 100_000);
    advance(99_999);
    clint.update(now());
    expect(clint.read(0xbff8, 4)).toBe(999);
    expect(state.mtip).toBe(false);
    advance(1);
    clint.update(now());
    expect(state.mtip).toBe(true);
  });

  it("lets the guest write mtime and msip", () => {
    const { clint, state } = setup();
    clint.write(0xbffc, 4, 1);
    clint.write(0xbff8, 4, 5);
    expect(clint.read(0xbff8, 4)).toBe(5);
    expect(clint.read(0xbffc, 4)).toBe(1);
    expect(clint.mtime()).toBe(2 ** 32 + 5);
    clint.write(0, 4, 3);
    expect(state.msip).toBe(true);
    expect(clint.read(0, 4)).toBe(1);
  });
});

describe("CLINT reset", () => {
  it("clears mtime and msip but keeps mtimecmp, as QEMU's device reset does", () => {
    const { clint, state, advance } = setup();
    clint.write(0x4000, 4, 123);
    clint.write(0, 4, 1);
    advance(1_000_000);
    clint.reset();
    expect(clint.read(0xbff8, 4)).toBe(0);
    expect(clint.read(0x4000, 4)).toBe(123);
    expect(state.msip).toBe(false);
    expect(state.mtip).toBe(false);
  });
});

describe("CLINT migration", () => {
  it("continues mtime from the saved value and re-drives MTIP and MSIP on the new CLINT", () => {
    const a = setup();
    a.clint.write(0xbff8, 4, 5000);
    a.clint.write(0x4004, 4, 0);
    a.clint.write(0x4000, 4, 6000);
    a.clint.write(0, 4, 1);
    const bytes = saveStateBytes(CLINT_VMSD, a.clint.saveState());

    const b = setup();
    b.advance(123_456_789);
    expect(b.state.mtip).toBe(true);
    b.clint.adoptState(loadStateBytes(CLINT_VMSD, 1, bytes, b.clint.saveState()));
    expect(b.clint.read(0xbff8, 4)).toBe(5000);
    expect(b.state.mtip).toBe(false);
    expect(b.state.msip).toBe(true);
    // 1000 ticks after the tick the state was adopted in.
    expect(b.clint.nextDeadlineNs()).toBe(Math.floor(b.now() / 100) * 100 + 100_000);
  });
});
