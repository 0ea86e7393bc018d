// Goldfish RTC at 0x101000, PLIC source 11 (QEMU hw/rtc/goldfish_rtc.c): nanoseconds since
// the Unix epoch from the host's real-time clock plus a guest-settable offset, and one alarm.
// Reading TIME_LOW latches the high half for the next TIME_HIGH read. Registers are 32-bit.
// The counter is 64-bit and beyond 2^53, so this (rare) path computes with BigInt.

import type { IrqLine, MmioDevice } from "./device.js";

export const GOLDFISH_RTC_BASE = 0x101000;
export const GOLDFISH_RTC_IRQ = 11;

const TIME_LOW = 0x00;
const TIME_HIGH = 0x04;
const ALARM_LOW = 0x08;
const ALARM_HIGH = 0x0c;
const IRQ_ENABLED = 0x10;
const CLEAR_ALARM = 0x14;
const ALARM_STATUS = 0x18;
const CLEAR_INTERRUPT = 0x1c;
const MASK32 = 0xffffffffn;

export interface GoldfishRtcState {
  version: 1;
  tickOffset: string;
  alarmNext: string;
  alarmRunning: boolean;
  irqPending: boolean;
  irqEnabled: boolean;
  timeHigh: number;
}

/** Host real time in ns since the epoch (microsecond resolution). */
export function hostRealtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

export class GoldfishRtc implements MmioDevice {
  readonly name = "goldfish_rtc";
  private tickOffset = 0n;
  private alarmNext = 0n;
  private alarmRunning = false;
  private irqPending = false;
  private irqEnabled = false;
  private timeHigh = 0;

  constructor(
    private readonly irq: IrqLine,
    private readonly realtimeNs: () => bigint = hostRealtimeNs,
  ) {}

  reset(): void {
    // QEMU keeps tick_offset across reset (the wall clock does not jump); alarm and IRQ clear.
    this.alarmNext = 0n;
    this.alarmRunning = false;
    this.irqPending = false;
    this.irqEnabled = false;
    this.timeHigh = 0;
    this.update();
  }

  private count(): bigint {
    return (this.realtimeNs() + this.tickOffset) & 0xffffffffffffffffn;
  }

  private update(): void {
    this.irq.set(this.irqPending && this.irqEnabled);
  }

  /** Fire the alarm if its time has come; the board calls this between batches. */
  poll(): void {
    if (this.alarmRunning && this.count() >= this.alarmNext) {
      this.alarmRunning = false;
      this.irqPending = true;
      this.update();
    }
  }

  /** Nanoseconds of real time until the alarm fires, or null when none is armed. */
  alarmDelayNs(): number | null {
    if (!this.alarmRunning) return null;
    const d = this.alarmNext - this.count();
    return d <= 0n ? 0 : Number(d);
  }

  private setAlarm(): void {
    if (this.alarmNext <= this.count()) {
      this.alarmRunning = false;
      this.irqPending = true;
    } else {
      this.alarmRunning = true;
    }
    this.update();
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0;
    switch (offset) {
      case TIME_LOW: {
        const c = this.count();
        this.timeHigh = Number(c >> 32n);
        return Number(c & MASK32);
      }
      case TIME_HIGH: return this.timeHigh;
      case ALARM_LOW: return Number(this.alarmNext & MASK32);
      case ALARM_HIGH: return Number(this.alarmNext >> 32n);
      case IRQ_ENABLED: return this.irqEnabled ? 1 : 0;
      case ALARM_STATUS: return this.alarmRunning ? 1 : 0;
      default: return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    const v = BigInt(value >>> 0);
    switch (offset) {
      case TIME_LOW: {
        const cur = this.count();
        this.tickOffset += ((cur & ~MASK32) | v) - cur;
        break;
      }
      case TIME_HIGH: {
        const cur = this.count();
        this.tickOffset += ((v << 32n) | (cur & MASK32)) - cur;
        break;
      }
      case ALARM_LOW:
        this.alarmNext = (this.alarmNext & ~MASK32) | v;
        this.setAlarm();
        break;
      case ALARM_HIGH:
        this.alarmNext = (v << 32n) | (this.alarmNext & MASK32);
        break;
      case IRQ_ENABLED:
        this.irqEnabled = (value & 1) !== 0;
        this.update();
        break;
      case CLEAR_ALARM:
        this.alarmRunning = false;
        break;
      case CLEAR_INTERRUPT:
        this.irqPending = false;
        this.update();
        break;
    }
  }

  save(): GoldfishRtcState {
    return {
      version: 1,
      tickOffset: this.tickOffset.toString(),
      alarmNext: this.alarmNext.toString(),
      alarmRunning: this.alarmRunning,
      irqPending: this.irqPending,
      irqEnabled: this.irqEnabled,
      timeHigh: this.timeHigh,
    };
  }

  load(s: GoldfishRtcState): void {
    this.tickOffset = BigInt(s.tickOffset);
    this.alarmNext = BigInt(s.alarmNext);
    this.alarmRunning = s.alarmRunning;
    this.irqPending = s.irqPending;
    this.irqEnabled = s.irqEnabled;
    this.timeHigh = s.timeHigh;
    this.update();
  }
}
