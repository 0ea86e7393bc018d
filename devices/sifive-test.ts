// SiFive test finisher ("sifive,test0") (QEMU hw/misc/sifive_test.c): a write
// to offset 0 with status 0x5555 powers off with exit status 0, 0x3333 powers off with the
// code in the upper 16 bits (QEMU: guest-panic, exit status = code), 0x7777 resets.

import type { MmioDevice } from "./device.js";

export const FINISHER_FAIL = 0x3333;
export const FINISHER_PASS = 0x5555;
export const FINISHER_RESET = 0x7777;

export type FinisherEvent =
  | { kind: "shutdown"; code: number; reason: "guest-shutdown" | "guest-panic" }
  | { kind: "reset" };

export class SifiveTest implements MmioDevice {
  readonly name = "riscv.sifive.test";

  constructor(private readonly onEvent: (e: FinisherEvent) => void) {}

  read(): number {
    return 0;
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset !== 0) return;
    const status = value & 0xffff;
    const code = (value >>> 16) & 0xffff;
    if (status === FINISHER_FAIL) this.onEvent({ kind: "shutdown", code, reason: "guest-panic" });
    else if (status === FINISHER_PASS) this.onEvent({ kind: "shutdown", code: 0, reason: "guest-shutdown" });
    else if (status === FINISHER_RESET) this.onEvent({ kind: "reset" });
  }
}
