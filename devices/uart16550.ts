// NS16550A UART (QEMU hw/char/serial.c): 16-byte receive
// FIFO with trigger levels, an instant transmitter (LSR always shows THRE|TEMT after a
// write), IER/IIR/LSR/MSR/SCR, divisor latch and loopback. The MMIO window is 0x100 bytes
// and, as QEMU's serial_mm ops do, every access of any size hits the byte register at
// offset & 7.

import type { IrqLine, Migratable, MmioDevice } from "./device.js";
import type { VMStateDescription } from "../src/migration/vmstate.js";

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

/** The UART's migratable state; register names follow QEMU's SerialState. */
export interface Uart16550State {
  divider: number;
  rbr: number;
  ier: number;
  iir: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;
  thr_ipending: boolean;
  timeout_ipending: boolean;
  /** The receive FIFO as QEMU's Fifo8: a ring of FIFO_LENGTH bytes, head index and count. */
  recv_fifo: Uint8Array;
  recv_fifo_head: number;
  recv_fifo_num: number;
  /** Expiry of the FIFO character timeout on the guest clock in ns; -1 when not armed. */
  fifo_timeout_timer: bigint;
  /** Console bytes the receiver had no room for yet (filled in by saveState). */
  pending_input_len: number;
  pending_input: Uint8Array;
}

/** Console backlog carried across a migration at most (bytes). */
const MAX_PENDING_INPUT = 1 << 20;

/**
 * QEMU's vmstate_serial (hw/char/serial.c) keeps the same registers, with the FIFO, the
 * pending-interrupt flags and the FIFO timeout timer in subsections; minivm sends the timer
 * and the console backlog as subsections only while they are armed / non-empty.
 */
export const UART16550_VMSD: VMStateDescription<Uart16550State> = {
  name: "serial",
  version_id: 1,
  minimum_version_id: 1,
  fields: [
    { name: "divider", type: "uint16" },
    { name: "rbr", type: "uint8" },
    { name: "ier", type: "uint8", range: [0, 0x0f] },
    { name: "iir", type: "uint8" },
    { name: "lcr", type: "uint8" },
    { name: "mcr", type: "uint8", range: [0, 0x1f] },
    { name: "lsr", type: "uint8" },
    { name: "msr", type: "uint8" },
    { name: "scr", type: "uint8" },
    { name: "fcr", type: "uint8" },
    { name: "thr_ipending", type: "bool" },
    { name: "timeout_ipending", type: "bool" },
    { name: "recv_fifo", type: "buffer", size: FIFO_LENGTH },
    { name: "recv_fifo_head", type: "uint32", range: [0, FIFO_LENGTH - 1] },
    { name: "recv_fifo_num", type: "uint32", range: [0, FIFO_LENGTH] },
  ],
  pre_load: (s) => {
    s.fifo_timeout_timer = -1n;
    s.pending_input_len = 0;
    s.pending_input = new Uint8Array(0);
  },
  post_load: (s) => ((s.fcr & ~0xc9) !== 0 ? `fcr 0x${s.fcr.toString(16)} has bits the FCR never keeps` : null),
  subsections: [
    {
      name: "serial/fifo_timeout_timer",
      version_id: 1,
      minimum_version_id: 1,
      needed: (s) => s.fifo_timeout_timer !== -1n,
      fields: [{ name: "fifo_timeout_timer", type: "timer" }],
    },
    {
      name: "serial/pending_input",
      version_id: 1,
      minimum_version_id: 1,
      needed: (s) => s.pending_input_len > 0,
      fields: [
        { name: "pending_input_len", type: "uint32", range: [0, MAX_PENDING_INPUT] },
        { name: "pending_input", type: "vbuffer", lengthField: "pending_input_len", max: MAX_PENDING_INPUT },
      ],
    },
  ],
};

function uartPowerOn(): Uart16550State {
  return {
    divider: 0x0c,
    rbr: 0,
    ier: 0,
    iir: IIR_NO_INT,
    lcr: 0,
    mcr: MCR_OUT2,
    lsr: LSR_TEMT | LSR_THRE,
    msr: MSR_DCD | MSR_DSR | MSR_CTS,
    scr: 0,
    fcr: 0,
    thr_ipending: false,
    timeout_ipending: false,
    recv_fifo: new Uint8Array(FIFO_LENGTH),
    recv_fifo_head: 0,
    recv_fifo_num: 0,
    fifo_timeout_timer: -1n,
    pending_input_len: 0,
    pending_input: new Uint8Array(0),
  };
}

export class Uart16550 implements MmioDevice, Migratable<Uart16550State> {
  readonly name = "serial";
  readonly vmsd = UART16550_VMSD;
  private s = uartPowerOn();
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
    const speed = 399193 / (this.s.divider === 0 ? 1 : this.s.divider);
    const frame = 1 + 5 + (this.s.lcr & 3) + (this.s.lcr & 0x08 ? 1 : 0) + (this.s.lcr & 0x04 ? 2 : 1);
    return (1e9 / speed) * frame;
  }

  /** Fire the character timeout when due; the board calls this between batches. */
  poll(nowNs: number): void {
    if (nowNs < this.timeoutAtNs) return;
    this.timeoutAtNs = Infinity;
    if (this.s.recv_fifo_num > 0) {
      this.s.timeout_ipending = true;
      this.updateIrq();
    }
  }

  /** When poll() next has work, or null. */
  nextDeadlineNs(): number | null {
    return this.timeoutAtNs === Infinity ? null : this.timeoutAtNs;
  }

  reset(): void {
    // The console backlog is the host's, not the device's: it survives a reset.
    this.s = uartPowerOn();
    this.timeoutAtNs = Infinity;
    this.updateIrq();
  }

  private fifoPush(b: number): void {
    this.s.recv_fifo[(this.s.recv_fifo_head + this.s.recv_fifo_num) % FIFO_LENGTH] = b;
    this.s.recv_fifo_num++;
  }

  private fifoPop(): number {
    const b = this.s.recv_fifo[this.s.recv_fifo_head];
    this.s.recv_fifo_head = (this.s.recv_fifo_head + 1) % FIFO_LENGTH;
    this.s.recv_fifo_num--;
    return b;
  }

  private fifoClear(): void {
    this.s.recv_fifo_head = 0;
    this.s.recv_fifo_num = 0;
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
    return (this.s.fcr & FCR_FE) !== 0;
  }

  private canReceive(): boolean {
    if (this.fifoOn()) return this.s.recv_fifo_num < FIFO_LENGTH;
    return (this.s.lsr & LSR_DR) === 0;
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
      if (this.s.recv_fifo_num >= FIFO_LENGTH) this.s.lsr |= LSR_OE;
      else this.fifoPush(b);
      this.s.lsr |= LSR_DR;
      // The character timeout: 4 character times after the last byte arrived.
      this.timeoutAtNs = this.now() + 4 * this.charTransmitTimeNs();
    } else {
      if (this.s.lsr & LSR_DR) this.s.lsr |= LSR_OE;
      this.s.rbr = b;
      this.s.lsr |= LSR_DR;
    }
  }

  private updateIrq(): void {
    let id = IIR_NO_INT;
    if (this.s.ier & IER_RLSI && this.s.lsr & LSR_INT_ANY) id = IIR_RLSI;
    else if (this.s.ier & IER_RDI && this.s.timeout_ipending) id = IIR_CTI;
    else if (this.s.ier & IER_RDI && this.s.lsr & LSR_DR && (!this.fifoOn() || this.s.recv_fifo_num >= ITL[this.s.fcr >>> 6])) id = IIR_RDI;
    else if (this.s.ier & IER_THRI && this.s.thr_ipending) id = IIR_THRI;
    else if (this.s.ier & IER_MSI && this.s.msr & MSR_ANY_DELTA) id = IIR_MSI;
    this.s.iir = id | (this.s.iir & 0xf0);
    this.irq.set(id !== IIR_NO_INT);
  }

  private transmit(b: number): void {
    if (this.s.mcr & MCR_LOOP) {
      // QEMU loops the byte straight into the receiver: an unread byte is overrun.
      this.receiveByte(b);
    } else {
      this.output(Uint8Array.of(b));
    }
    this.s.lsr |= LSR_THRE | LSR_TEMT;
    this.s.thr_ipending = true;
    this.updateIrq();
  }

  read(offset: number, _size: 1 | 2 | 4 = 1): number {
    switch (offset & 7) {
      case 0: {
        if (this.s.lcr & LCR_DLAB) return this.s.divider & 0xff;
        let ret: number;
        if (this.fifoOn()) {
          ret = this.s.recv_fifo_num > 0 ? this.fifoPop() : 0;
          if (this.s.recv_fifo_num === 0) this.s.lsr &= ~(LSR_DR | LSR_BI);
          else this.timeoutAtNs = this.now() + 4 * this.charTransmitTimeNs();
        } else {
          ret = this.s.rbr;
          this.s.lsr &= ~(LSR_DR | LSR_BI);
        }
        this.s.timeout_ipending = false;
        this.updateIrq();
        this.feed();
        return ret;
      }
      case 1:
        return this.s.lcr & LCR_DLAB ? (this.s.divider >>> 8) & 0xff : this.s.ier;
      case 2: {
        const ret = this.s.iir;
        if ((ret & IIR_ID) === IIR_THRI) {
          this.s.thr_ipending = false;
          this.updateIrq();
        }
        return ret;
      }
      case 3:
        return this.s.lcr;
      case 4:
        return this.s.mcr;
      case 5: {
        const ret = this.s.lsr;
        if (this.s.lsr & (LSR_BI | LSR_OE)) {
          this.s.lsr &= ~(LSR_BI | LSR_OE);
          this.updateIrq();
        }
        return ret;
      }
      case 6: {
        if (this.s.mcr & MCR_LOOP) {
          // Loopback: outputs appear on the modem status inputs.
          return ((this.s.mcr & 0x0c) << 4) | ((this.s.mcr & 0x02) << 3) | ((this.s.mcr & 0x01) << 5);
        }
        const ret = this.s.msr;
        if (this.s.msr & MSR_ANY_DELTA) {
          this.s.msr &= 0xf0;
          this.updateIrq();
        }
        return ret;
      }
      default:
        return this.s.scr;
    }
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    value &= 0xff;
    switch (offset & 7) {
      case 0:
        if (this.s.lcr & LCR_DLAB) {
          this.s.divider = (this.s.divider & 0xff00) | value;
          return;
        }
        this.s.thr_ipending = false;
        this.s.lsr &= ~(LSR_THRE | LSR_TEMT);
        this.updateIrq();
        this.transmit(value);
        return;
      case 1: {
        if (this.s.lcr & LCR_DLAB) {
          this.s.divider = (this.s.divider & 0xff) | (value << 8);
          return;
        }
        const changed = (this.s.ier ^ value) & 0x0f;
        this.s.ier = value & 0x0f;
        if (changed & IER_THRI) this.s.thr_ipending = (this.s.ier & IER_THRI) !== 0 && (this.s.lsr & LSR_THRE) !== 0;
        if (changed) this.updateIrq();
        return;
      }
      case 2: {
        if (this.s.fcr === value) return;
        if ((value ^ this.s.fcr) & FCR_FE) value |= FCR_XFR | FCR_RFR;
        if (value & FCR_RFR) {
          this.s.lsr &= ~(LSR_DR | LSR_BI);
          this.s.timeout_ipending = false;
          this.timeoutAtNs = Infinity;
          this.fifoClear();
        }
        if (value & FCR_XFR) {
          this.s.lsr |= LSR_THRE;
          this.s.thr_ipending = true;
        }
        this.s.fcr = value & 0xc9;
        if (this.s.fcr & FCR_FE) this.s.iir |= 0xc0;
        else this.s.iir &= ~0xc0;
        this.updateIrq();
        this.feed();
        return;
      }
      case 3:
        this.s.lcr = value;
        return;
      case 4:
        this.s.mcr = value & 0x1f;
        return;
      case 7:
        this.s.scr = value;
        return;
      default:
        return; // LSR and MSR are read-only
    }
  }

  saveState(): Uart16550State {
    this.s.fifo_timeout_timer = this.timeoutAtNs === Infinity ? -1n : BigInt(Math.ceil(this.timeoutAtNs));
    this.s.pending_input = Uint8Array.from(this.pendingInput);
    this.s.pending_input_len = this.pendingInput.length;
    return this.s;
  }

  /** Take the loaded registers, re-arm the FIFO timeout and re-drive the interrupt line. */
  adoptState(s: Uart16550State): void {
    this.s = s;
    this.timeoutAtNs = s.fifo_timeout_timer === -1n ? Infinity : Number(s.fifo_timeout_timer);
    this.pendingInput = [...s.pending_input];
    this.updateIrq();
  }
}
