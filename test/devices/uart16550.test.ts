import { describe, expect, it } from "vitest";
import { Uart16550 } from "../../devices/uart16550.js";
import { UART16550_VMSD } from "../../devices/uart16550.js";
import { loadStateBytes, saveStateBytes } from "../../src/migration/vmstate.js";

function setup() {
  let now = 0;
  const irq = { level: false };
  const out: number[] = [];
  const uart = new Uart16550({ set: (l) => (irq.level = l) }, (b) => out.push(...b), () => now);
  return { uart, irq, out, advance: (ns: number) => (now += ns), now: () => now };
}

describe("NS16550A", () => {
  it("transmits at once and raises THRE after each byte when IER.THRI is set; reading IIR clears it", () => {
    const { uart, irq, out } = setup();
    expect(uart.read(5, 1)).toBe(0x60);
    uart.write(1, 1, 0x02);
    expect(irq.level).toBe(true);
    expect(uart.read(2, 1)).toBe(0x02);
    expect(irq.level).toBe(false);
    expect(uart.read(2, 1)).toBe(0x01);
    uart.write(0, 1, 0x41);
    expect(out).toEqual([0x41]);
    expect(irq.level).toBe(true);
  });

  it("holds typed bytes back until the receiver has room (no FIFO: one byte)", () => {
    const { uart } = setup();
    uart.input(new TextEncoder().encode("ab"));
    expect(uart.read(5, 1) & 1).toBe(1);
    expect(uart.read(0, 1)).toBe(0x61);
    expect(uart.read(0, 1)).toBe(0x62);
    expect(uart.read(5, 1) & 1).toBe(0);
    expect(uart.hasPendingInput()).toBe(false);
  });

  it("with FIFOs, interrupts at the trigger level or after the character timeout", () => {
    const { uart, irq, advance, now } = setup();
    uart.write(2, 1, 0x41); // FIFO on, trigger level 4
    uart.write(1, 1, 0x01);
    uart.input(new TextEncoder().encode("xyz"));
    expect(irq.level).toBe(false);
    const deadline = uart.nextDeadlineNs();
    expect(deadline).not.toBeNull();
    advance((deadline ?? 0) - now());
    uart.poll(now());
    expect(irq.level).toBe(true);
    expect(uart.read(2, 1)).toBe(0xcc);
    // Reading a byte clears the timeout; two bytes are below the trigger level.
    expect(uart.read(0, 1)).toBe(0x78);
    expect(uart.read(2, 1)).toBe(0xc1);
    expect(irq.level).toBe(false);
    uart.input(new TextEncoder().encode("vw"));
    expect(uart.read(2, 1)).toBe(0xc4);
  });
});

describe("NS16550A migration", () => {
  it("carries an armed FIFO character timeout and the FIFO contents to a second UART", () => {
    const a = setup();
    a.uart.write(2, 1, 0x41); // FIFO on, trigger level 4: two bytes will not reach it
    a.uart.write(1, 1, 0x01);
    a.uart.input(new TextEncoder().encode("hi"));
    const due = a.uart.nextDeadlineNs();
    expect(due).not.toBeNull();
    const bytes = saveStateBytes(UART16550_VMSD, a.uart.saveState());

    const b = setup();
    b.uart.adoptState(loadStateBytes(UART16550_VMSD, 1, bytes, b.uart.saveState()));
    // Timers carry whole nanoseconds, as QEMU's do.
    expect(b.uart.nextDeadlineNs()).toBe(Math.ceil(due!));
    expect(b.irq.level).toBe(false);
    b.advance(Math.ceil(due!) - b.now());
    b.uart.poll(b.now());
    expect(b.irq.level).toBe(true);
    expect(b.uart.read(2, 1) & 0x0f).toBe(0x0c); // character timeout
    expect(b.uart.read(0, 1)).toBe(0x68);
    expect(b.uart.read(0, 1)).toBe(0x69);
  });
});
