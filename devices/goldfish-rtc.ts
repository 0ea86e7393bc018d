// Goldfish RTC (QEMU hw/rtc/goldfish_rtc.c): nanoseconds since
// the Unix epoch from the host's real-time clock plus a guest-settable offset, and one alarm.
// Reading TIME_LOW latches the high half for the next TIME_HIGH read. Registers are 32-bit.
// The counter is 64-bit and beyond 2^53, so this (rare) path computes with BigInt.

import type { IrqLine, Migratable, MmioDevice } from "./device.js";
import type { VMStateDescription } from "../src/migration/vmstate.js";


const TIME_LOW = 0x00;
const TIME_HIGH = 0x04;
const ALARM_LOW = 0x08;
const ALARM_HIGH = 0x0c;
const IRQ_ENABLED = 0x10;
const CLEAR_ALARM = 0x14;
const ALARM_STATUS = 0x18;
const CLEAR_INTERRUPT = 0x1c;
const MASK32 = 0xffffffffn;

/** The RTC's migratable state; names follow QEMU's GoldfishRTCState. */
export interface GoldfishRtcState {
  /** Guest time minus host real time, ns (signed: the guest may set a time in the past). */
  tick_offset: bigint;
  alarm_next: bigint;
  alarm_running: boolean;
  irq_pending: boolean;
  irq_enabled: boolean;
  time_high: number;
}

/**
 * QEMU's goldfish_rtc description saves the same registers. Both ends count from the host's
 * real-time clock, so the offset carries over as it is.
 */
export const GOLDFISH_RTC_VMSD: VMStateDescription<GoldfishRtcState> = {
  name: "goldfish_rtc",
  version_id: 1,
  minimum_version_id: 1,
  fields: [
    { name: "tick_offset", type: "int64" },
    { name: "alarm_next", type: "uint64" },
    { name: "alarm_running", type: "bool" },
    { name: "irq_pending", type: "bool" },
    { name: "irq_enabled", type: "bool" },
    { name: "time_high", type: "uint32" },
  ],
};

/** Host real time in ns since the epoch (microsecond resolution). */
export function hostRealtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

export class GoldfishRtc implements MmioDevice, Migratable<GoldfishRtcState> {
  readonly name = "goldfish_rtc";
  readonly vmsd = GOLDFISH_RTC_VMSD;
  private s: GoldfishRtcState = { tick_offset: 0n, alarm_next: 0n, alarm_running: false, irq_pending: false, irq_enabled: false, time_high: 0 };

  constructor(
    private readonly irq: IrqLine,
    private readonly realtimeNs: () => bigint = hostRealtimeNs,
  ) {}

  reset(): void {
    // QEMU keeps tick_offset across reset (the wall clock does not jump); alarm and IRQ clear.
    this.s.alarm_next = 0n;
    this.s.alarm_running = false;
    this.s.irq_pending = false;
    this.s.irq_enabled = false;
    this.s.time_high = 0;
    this.update();
  }

  private count(): bigint {
    return (this.realtimeNs() + this.s.tick_offset) & 0xffffffffffffffffn;
  }

  private update(): void {
    this.irq.set(this.s.irq_pending && this.s.irq_enabled);
  }

  /** Fire the alarm if its time has come; the board calls this between batches. */
  poll(): void {
    if (this.s.alarm_running && this.count() >= this.s.alarm_next) {
      this.s.alarm_running = false;
      this.s.irq_pending = true;
      this.update();
    }
  }

  /** Nanoseconds of real time until the alarm fires, or null when none is armed. */
  alarmDelayNs(): number | null {
    if (!this.s.alarm_running) return null;
    const d = this.s.alarm_next - this.count();
    return d <= 0n ? 0 : Number(d);
  }

  private setAlarm(): void {
    if (this.s.alarm_next <= this.count()) {
      this.s.alarm_running = false;
      this.s.irq_pending = true;
    } else {
      this.s.alarm_running = true;
    }
    this.update();
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0;
    switch (offset) {
      case TIME_LOW: {
        const c = this.count();
        this.s.time_high = Number(c >> 32n);
        return Number(c & MASK32);
      }
      case TIME_HIGH: return this.s.time_high;
      case ALARM_LOW: return Number(this.s.alarm_next & MASK32);
      case ALARM_HIGH: return Number(this.s.alarm_next >> 32n);
      case IRQ_ENABLED: return this.s.irq_enabled ? 1 : 0;
      case ALARM_STATUS: return this.s.alarm_running ? 1 : 0;
      default: return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    const v = BigInt(value >>> 0);
    switch (offset) {
      case TIME_LOW: {
        const cur = this.count();
        this.s.tick_offset = BigInt.asIntN(64, this.s.tick_offset + ((cur & ~MASK32) | v) - cur);
        break;
      }
      case TIME_HIGH: {
        const cur = this.count();
        // Kept within int64: the count is taken modulo 2^64 anyway.
        this.s.tick_offset = BigInt.asIntN(64, this.s.tick_offset + ((v << 32n) | (cur & MASK32)) - cur);
        break;
      }
      case ALARM_LOW:
        this.s.alarm_next = (this.s.alarm_next & ~MASK32) | v;
        this.setAlarm();
        break;
      case ALARM_HIGH:
        this.s.alarm_next = (v << 32n) | (this.s.alarm_next & MASK32);
        break;
      case IRQ_ENABLED:
        this.s.irq_enabled = (value & 1) !== 0;
        this.update();
        break;
      case CLEAR_ALARM:
        this.s.alarm_running = false;
        break;
      case CLEAR_INTERRUPT:
        this.s.irq_pending = false;
        this.update();
        break;
    }
  }

  saveState(): GoldfishRtcState {
    return this.s;
  }

  /** Take the loaded registers and re-drive the interrupt line. */
  adoptState(s: GoldfishRtcState): void {
    this.s = s;
    this.update();
  }
}
