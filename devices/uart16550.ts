// NS16550A UART0 at 0x10000000, PLIC source 10 (QEMU hw/char/serial.c): 16-byte receive
// FIFO with trigger levels, an instant transmitter (LSR always shows THRE|TEMT after a
// write), IER/IIR/LSR/MSR/SCR, divisor latch and loopback. The MMIO window is 0x100 bytes
// and, as QEMU's serial_mm ops do, every access of any size hits the byte register at
// offset & 7.

import type { IrqLine, MmioDevice } from "./device.js";

export const UART0_BASE = 0x10000000;
export const UART0_SIZE = 0x100;
export const UART0_IRQ = 10;
const FIFO_LENGTH = 16;

const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IER_MSI = 0x08;
const IIR_NO_INT = 0x01;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_CTI = 0x0c;
const IIR_MSI = 0x00;
const IIR_ID = 0x0e;
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_BI = 0x10;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const LSR_INT_ANY = 0x1e;
const MCR_LOOP = 0x10;
const MCR_OUT2 = 0x08;
const MSR_DCD = 0x80;
const MSR_DSR = 0x20;
const MSR_CTS = 0x10;
const MSR_ANY_DELTA = 0x0f;
const FCR_FE = 0x01;
const FCR_RFR = 0x02;
const FCR_XFR = 0x04;
const LCR_DLAB = 0x80;
const ITL = [1, 4, 8, 14];

export interface Uart16550State {
  version: 1;
  regs: { rbr: number; ier: number; iir: number; lcr: number; mcr: number; lsr: number; msr: number; scr: number; fcr: number; divider: number };
  thrIpending: boolean;
  timeoutIpending: boolean;
  rxFifo: number[];
  pendingInput: number[];
}

export class Uart16550 implements MmioDevice {
  readonly name = "serial";
  private rbr = 0;
  private ier = 0;
  private iir = IIR_NO_INT;
  private lcr = 0;
  private mcr = MCR_OUT2;
  private lsr = LSR_TEMT | LSR_THRE;
  private msr = MSR_DCD | MSR_DSR | MSR_CTS;
  private scr = 0;
  private fcr = 0;
  private divider = 0x0c;
  private thrIpending = false;
  private timeoutIpending = false;
  private rxFifo: number[] = [];
  /** Bytes typed at the console that the FIFO has no room for yet. */
  private pendingInput: number[] = [];
  /** Host ns when the FIFO character timeout fires (QEMU fifo_timeout_timer), or Infinity. */
  private timeoutAtNs = Infinity;

  constructor(
    private readonly irq: IrqLine,
    private readonly output: (bytes: Uint8Array) => void,
    private readonly now: () => number = () => performance.now() * 1e6,
  ) {}

  /** serial_update_parameters: one frame at 399193 / divisor baud (virt's baudbase). */
  private charTransmitTimeNs(): number {
    const speed = 399193 / (this.divider === 0 ? 1 : this.divider);
    const frame = 1 + 5 + (this.lcr & 3) + (this.lcr & 0x08 ? 1 : 0) + (this.lcr & 0x04 ? 2 : 1);
    return (1e9 / speed) * frame;
  }

  /** Fire the character timeout when due; the board calls this between batches. */
  poll(nowNs: number): void {
    if (nowNs < this.timeoutAtNs) return;
    this.timeoutAtNs = Infinity;
    if (this.rxFifo.length > 0) {
      this.timeoutIpending = true;
      this.updateIrq();
    }
  }

  /** When poll() next has work, or null. */
  nextDeadlineNs(): number | null {
    return this.timeoutAtNs === Infinity ? null : this.timeoutAtNs;
  }

  reset(): void {
    this.rbr = 0;
    this.ier = 0;
    this.iir = IIR_NO_INT;
    this.lcr = 0;
    this.mcr = MCR_OUT2;
    this.lsr = LSR_TEMT | LSR_THRE;
    this.msr = MSR_DCD | MSR_DSR | MSR_CTS;
    this.scr = 0;
    this.fcr = 0;
    this.divider = 0x0c;
    this.thrIpending = false;
    this.timeoutIpending = false;
    this.rxFifo = [];
    this.timeoutAtNs = Infinity;
    this.updateIrq();
  }

  /** Bytes from the host console; queued and fed to the FIFO as the guest drains it. */
  input(bytes: Uint8Array): void {
    for (const b of bytes) this.pendingInput.push(b);
    this.feed();
  }

  /** True while typed bytes wait for room in the receiver. */
  hasPendingInput(): boolean {
    return this.pendingInput.length > 0;
  }

  private fifoOn(): boolean {
    return (this.fcr & FCR_FE) !== 0;
  }

  private canReceive(): boolean {
    if (this.fifoOn()) return this.rxFifo.length < FIFO_LENGTH;
    return (this.lsr & LSR_DR) === 0;
  }

  private feed(): void {
    let got = false;
    while (this.pendingInput.length > 0 && this.canReceive()) {
      this.receiveByte(this.pendingInput.shift() as number);
      got = true;
    }
    if (got) this.updateIrq();
  }

  private receiveByte(b: number): void {
    if (this.fifoOn()) {
      if (this.rxFifo.length >= FIFO_LENGTH) this.lsr |= LSR_OE;
      else this.rxFifo.push(b);
      this.lsr |= LSR_DR;
      // The character timeout: 4 character times after the last byte arrived.
      this.timeoutAtNs = this.now() + 4 * this.charTransmitTimeNs();
    } else {
      if (this.lsr & LSR_DR) this.lsr |= LSR_OE;
      this.rbr = b;
      this.lsr |= LSR_DR;
    }
  }

  private updateIrq(): void {
    let id = IIR_NO_INT;
    if (this.ier & IER_RLSI && this.lsr & LSR_INT_ANY) id = IIR_RLSI;
    else if (this.ier & IER_RDI && this.timeoutIpending) id = IIR_CTI;
    else if (this.ier & IER_RDI && this.lsr & LSR_DR && (!this.fifoOn() || this.rxFifo.length >= ITL[this.fcr >>> 6])) id = IIR_RDI;
    else if (this.ier & IER_THRI && this.thrIpending) id = IIR_THRI;
    else if (this.ier & IER_MSI && this.msr & MSR_ANY_DELTA) id = IIR_MSI;
    this.iir = id | (this.iir & 0xf0);
    this.irq.set(id !== IIR_NO_INT);
  }

  private transmit(b: number): void {
    if (this.mcr & MCR_LOOP) {
      // QEMU loops the byte straight into the receiver: an unread byte is overrun.
      this.receiveByte(b);
    } else {
      this.output(Uint8Array.of(b));
    }
    this.lsr |= LSR_THRE | LSR_TEMT;
    this.thrIpending = true;
    this.updateIrq();
  }

  read(offset: number, _size: 1 | 2 | 4 = 1): number {
    switch (offset & 7) {
      case 0: {
        if (this.lcr & LCR_DLAB) return this.divider & 0xff;
        let ret: number;
        if (this.fifoOn()) {
          ret = this.rxFifo.length > 0 ? (this.rxFifo.shift() as number) : 0;
          if (this.rxFifo.length === 0) this.lsr &= ~(LSR_DR | LSR_BI);
          else this.timeoutAtNs = this.now() + 4 * this.charTransmitTimeNs();
        } else {
          ret = this.rbr;
          this.lsr &= ~(LSR_DR | LSR_BI);
        }
        this.timeoutIpending = false;
        this.updateIrq();
        this.feed();
        return ret;
      }
      case 1:
        return this.lcr & LCR_DLAB ? (this.divider >>> 8) & 0xff : this.ier;
      case 2: {
        const ret = this.iir;
        if ((ret & IIR_ID) === IIR_THRI) {
          this.thrIpending = false;
          this.updateIrq();
        }
        return ret;
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const ret = this.lsr;
        if (this.lsr & (LSR_BI | LSR_OE)) {
          this.lsr &= ~(LSR_BI | LSR_OE);
          this.updateIrq();
        }
        return ret;
      }
      case 6: {
        if (this.mcr & MCR_LOOP) {
          // Loopback: outputs appear on the modem status inputs.
          return ((this.mcr & 0x0c) << 4) | ((this.mcr & 0x02) << 3) | ((this.mcr & 0x01) << 5);
        }
        const ret = this.msr;
        if (this.msr & MSR_ANY_DELTA) {
          this.msr &= 0xf0;
          this.updateIrq();
        }
        return ret;
      }
      default:
        return this.scr;
    }
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    value &= 0xff;
    switch (offset & 7) {
      case 0:
        if (this.lcr & LCR_DLAB) {
          this.divider = (this.divider & 0xff00) | value;
          return;
        }
        this.thrIpending = false;
        this.lsr &= ~(LSR_THRE | LSR_TEMT);
        this.updateIrq();
        this.transmit(value);
        return;
      case 1: {
        if (this.lcr & LCR_DLAB) {
          this.divider = (this.divider & 0xff) | (value << 8);
          return;
        }
        const changed = (this.ier ^ value) & 0x0f;
        this.ier = value & 0x0f;
        if (changed & IER_THRI) this.thrIpending = (this.ier & IER_THRI) !== 0 && (this.lsr & LSR_THRE) !== 0;
        if (changed) this.updateIrq();
        return;
      }
      case 2: {
        if (this.fcr === value) return;
        if ((value ^ this.fcr) & FCR_FE) value |= FCR_XFR | FCR_RFR;
        if (value & FCR_RFR) {
          this.lsr &= ~(LSR_DR | LSR_BI);
          this.timeoutIpending = false;
          this.timeoutAtNs = Infinity;
          this.rxFifo = [];
        }
        if (value & FCR_XFR) {
          this.lsr |= LSR_THRE;
          this.thrIpending = true;
        }
        this.fcr = value & 0xc9;
        if (this.fcr & FCR_FE) this.iir |= 0xc0;
        else this.iir &= ~0xc0;
        this.updateIrq();
        this.feed();
        return;
      }
      case 3:
        this.lcr = value;
        return;
      case 4:
        this.mcr = value & 0x1f;
        return;
      case 7:
        this.scr = value;
        return;
      default:
        return; // LSR and MSR are read-only
    }
  }

  save(): Uart16550State {
    return {
      version: 1,
      regs: { rbr: this.rbr, ier: this.ier, iir: this.iir, lcr: this.lcr, mcr: this.mcr, lsr: this.lsr, msr: this.msr, scr: this.scr, fcr: this.fcr, divider: this.divider },
      thrIpending: this.thrIpending,
      timeoutIpending: this.timeoutIpending,
      rxFifo: [...this.rxFifo],
      pendingInput: [...this.pendingInput],
    };
  }

  load(s: Uart16550State): void {
    ({ rbr: this.rbr, ier: this.ier, iir: this.iir, lcr: this.lcr, mcr: this.mcr, lsr: this.lsr, msr: this.msr, scr: this.scr, fcr: this.fcr, divider: this.divider } = s.regs);
    this.thrIpending = s.thrIpending;
    this.timeoutIpending = s.timeoutIpending;
    this.rxFifo = [...s.rxFifo];
    this.pendingInput = [...s.pendingInput];
    this.updateIrq();
  }
}

