// The minivm virt board as one table (QEMU 7.2 hw/riscv/virt.c virt_memmap[] and the
// create_fdt_* functions): every device's address, size, access sizes, interrupt, device-tree
// node and hooks, in one row each. Construction, the bus map, reset, polling, wake-up
// deadlines, HMP `info mtree`, the device tree and migration all iterate this table; no
// device address or IRQ number is written anywhere else. Adding a device is one row here
// plus its file under devices/.

import { BootRom } from "../../devices/bootrom.js";
import { Clint, CLINT_TIMEBASE_FREQ } from "../../devices/clint.js";
import type { GuestRam, IrqLine, MmioDevice } from "../../devices/device.js";
import { GoldfishRtc } from "../../devices/goldfish-rtc.js";
import { Plic, PLIC_NUM_SOURCES } from "../../devices/plic.js";
import { SifiveTest, type FinisherEvent } from "../../devices/sifive-test.js";
import { Uart16550 } from "../../devices/uart16550.js";
import { VirtioMmio, type VirtioBackend } from "../../devices/virtio-mmio.js";
import { SIZES_16_32, SIZES_32, SIZES_ANY } from "./bus.js";
import type { FdtNode } from "./fdt.js";

/** Guest-physical base of RAM (VIRT_DRAM); its size is the machine's `-m`. */
export const RAM_BASE = 0x80000000;
/** The mtime frequency the device tree advertises (/cpus/timebase-frequency). */
export const TIMEBASE_FREQ = CLINT_TIMEBASE_FREQ;
/** The boot ROM's reset vector: the hart starts at the ROM's base. */
export const RESET_VECTOR = 0x1000;

/** The hart-side interrupt lines a device can drive (mip bits, via the board). */
export interface HartLines {
  setMsip(level: boolean): void;
  setMtip(level: boolean): void;
  setMeip(level: boolean): void;
  /** The PLIC's S-mode context output (SEIP as a device sets it). */
  setSeipExternal(level: boolean): void;
}

/** What a row's factory may use to build its device. */
export interface BoardContext {
  ram: GuestRam;
  hart: HartLines;
  /** The guest clock in ns (QEMU_CLOCK_VIRTUAL). */
  now(): number;
  /** Bytes the guest writes to the console UART. */
  serialOut(bytes: Uint8Array): void;
  finisher(e: FinisherEvent): void;
  /** The PLIC's input line `irq`; valid once the PLIC row has been built. */
  irqLine(irq: number): IrqLine;
  /** virtio-mmio slot n's backend (null = QEMU's empty transport). */
  virtioBackend(slot: number): VirtioBackend | null;
}

/** Phandles the device tree's rows refer to (QEMU's phandle allocation order). */
export const PHANDLE = { cpu: 1, intc: 2, plic: 3, test: 4 } as const;
/** mip bit numbers used in `interrupts-extended` (privileged spec 3.1.9). */
const IRQ_M_SOFT = 3;
const IRQ_M_TIMER = 7;
const IRQ_S_EXT = 9;
const IRQ_M_EXT = 11;

export interface BoardRow<D extends MmioDevice = MmioDevice> {
  /** The row's name, QEMU's memmap entry in lower case (VIRT_UART0 -> "uart0"). */
  readonly id: string;
  /** QEMU's QOM type name for the device (`-dump-vmstate` keys descriptions by it). */
  readonly type: string;
  readonly base: number;
  /** The MemoryRegion's size, as QEMU 7.2's `info mtree` shows it. */
  readonly size: number;
  /** The size in the device tree's `reg` (QEMU's memmap size), when it differs. */
  readonly regSize?: number;
  /** Valid access sizes (bit n = n bytes; QEMU's MemoryRegionOps.valid). */
  readonly sizes: number;
  readonly kind: "rom" | "i/o";
  /** The PLIC input the device drives, if any. */
  readonly irq?: number;
  create(ctx: BoardContext): D;
  /** Add the device's node under /soc; `order` places it as QEMU's create_fdt does. */
  readonly fdt?: { order: number; node(soc: FdtNode, row: BoardRow<D>): FdtNode };
  /** Device reset (system_reset), in table order. */
  reset?(dev: D): void;
  /** Called between instruction batches with the guest clock, to fire due timers. */
  poll?(dev: D, nowNs: number): void;
  /**
   * When the device next needs poll(), in guest ns, or null; `mie` is the hart's enable
   * mask (a timer the hart ignores need not wake it).
   */
  deadline?(dev: D, nowNs: number, mie: number): number | null;
  /** Migration: the section's instance id among devices sharing one VMState name. */
  readonly instanceId?: number;
}

/** Keeps each row's device type while the table holds rows of many types. */
function row<D extends MmioDevice>(r: BoardRow<D>): BoardRow {
  return r as unknown as BoardRow;
}

/** The `reg` property with #address-cells = #size-cells = 2. */
export function reg64(base: number, size: number): number[] {
  return [Math.floor(base / 2 ** 32), base >>> 0, Math.floor(size / 2 ** 32), size >>> 0];
}

function socNode(soc: FdtNode, r: BoardRow, name: string): FdtNode {
  return soc.child(`${name}@${r.base.toString(16)}`);
}

const VIRTIO_SLOTS = 8;
const VIRTIO_BASE = 0x10001000;
const VIRTIO_STRIDE = 0x1000;
const VIRTIO_FIRST_IRQ = 1;

function virtioRow(slot: number): BoardRow {
  return row<VirtioMmio>({
    id: `virtio${slot}`,
    type: "virtio-mmio",
    base: VIRTIO_BASE + slot * VIRTIO_STRIDE,
    size: 0x200,
    regSize: VIRTIO_STRIDE,
    sizes: SIZES_ANY,
    kind: "i/o",
    irq: VIRTIO_FIRST_IRQ + slot,
    instanceId: slot,
    create: (ctx) => new VirtioMmio(ctx.ram, ctx.irqLine(VIRTIO_FIRST_IRQ + slot), ctx.virtioBackend(slot)),
    // QEMU adds the transports from the top slot down, each ahead of the last.
    fdt: {
      order: 3 + (VIRTIO_SLOTS - 1 - slot) / VIRTIO_SLOTS,
      node: (soc, r) =>
        socNode(soc, r, "virtio_mmio").prop("interrupts", [r.irq ?? 0]).prop("interrupt-parent", [PHANDLE.plic])
          .prop("reg", reg64(r.base, r.regSize ?? r.size)).prop("compatible", "virtio,mmio"),
    },
    reset: (d) => d.reset(),
  });
}

/**
 * The board, in construction order: the PLIC comes before the devices that take its lines.
 * The bus map, `info mtree` and the device tree order rows by address or `fdt.order`.
 */
export const BOARD: readonly BoardRow[] = [
  row<BootRom>({
    id: "mrom",
    type: "riscv.mrom",
    base: RESET_VECTOR,
    size: 0xf000,
    sizes: SIZES_ANY,
    kind: "rom",
    create: () => new BootRom({ startAddr: RAM_BASE, fdtAddr: 0, nextAddr: 0 }),
  }),
  row<SifiveTest>({
    id: "test",
    type: "riscv.sifive.test",
    base: 0x100000,
    size: 0x1000,
    sizes: SIZES_16_32,
    kind: "i/o",
    create: (ctx) => new SifiveTest((e) => ctx.finisher(e)),
    fdt: {
      order: 2,
      node: (soc, r) =>
        socNode(soc, r, "test").prop("phandle", [PHANDLE.test]).prop("reg", reg64(r.base, r.size))
          .prop("compatible", ["sifive,test1", "sifive,test0", "syscon"]),
    },
  }),
  row<Plic>({
    id: "plic",
    type: "riscv.sifive.plic",
    base: 0xc000000,
    size: 0x600000,
    sizes: SIZES_32,
    kind: "i/o",
    create: (ctx) =>
      new Plic((context, level) => {
        if (context === 0) ctx.hart.setMeip(level);
        else ctx.hart.setSeipExternal(level);
      }),
    fdt: {
      order: 4,
      node: (soc, r) =>
        socNode(soc, r, "plic").prop("phandle", [PHANDLE.plic]).prop("riscv,ndev", [PLIC_NUM_SOURCES])
          .prop("reg", reg64(r.base, r.size))
          .prop("interrupts-extended", [PHANDLE.intc, IRQ_M_EXT, PHANDLE.intc, IRQ_S_EXT]).prop("interrupt-controller", null)
          .prop("compatible", ["sifive,plic-1.0.0", "riscv,plic0"]).prop("#address-cells", [0]).prop("#interrupt-cells", [1]),
    },
    reset: (d) => d.reset(),
  }),
  row<Clint>({
    id: "clint",
    type: "riscv.aclint.mtimer",
    base: 0x2000000,
    size: 0xc000,
    regSize: 0x10000,
    sizes: SIZES_32,
    kind: "i/o",
    create: (ctx) => new Clint({ setMsip: (l) => ctx.hart.setMsip(l), setMtip: (l) => ctx.hart.setMtip(l) }, () => ctx.now()),
    fdt: {
      order: 5,
      node: (soc, r) =>
        socNode(soc, r, "clint").prop("interrupts-extended", [PHANDLE.intc, IRQ_M_SOFT, PHANDLE.intc, IRQ_M_TIMER])
          .prop("reg", reg64(r.base, r.regSize ?? r.size)).prop("compatible", ["sifive,clint0", "riscv,clint0"]),
    },
    reset: (d) => d.reset(),
    poll: (d, now) => d.update(now),
    // mip.MTIP wakes a WFI only when mie.MTIE is set.
    deadline: (d, _now, mie) => ((mie & (1 << IRQ_M_TIMER)) !== 0 ? d.nextDeadlineNs() : null),
  }),
  row<GoldfishRtc>({
    id: "rtc",
    type: "goldfish_rtc",
    base: 0x101000,
    size: 0x24,
    regSize: 0x1000,
    sizes: SIZES_32,
    kind: "i/o",
    irq: 11,
    create: (ctx) => new GoldfishRtc(ctx.irqLine(11)),
    fdt: {
      order: 0,
      node: (soc, r) =>
        socNode(soc, r, "rtc").prop("interrupts", [r.irq ?? 0]).prop("interrupt-parent", [PHANDLE.plic])
          .prop("reg", reg64(r.base, r.regSize ?? r.size)).prop("compatible", "google,goldfish-rtc"),
    },
    reset: (d) => d.reset(),
    poll: (d) => d.poll(),
    deadline: (d, now) => {
      const delay = d.alarmDelayNs();
      return delay === null ? null : now + delay;
    },
  }),
  row<Uart16550>({
    id: "uart0",
    type: "serial-mm",
    base: 0x10000000,
    size: 8,
    regSize: 0x100,
    sizes: SIZES_ANY,
    kind: "i/o",
    irq: 10,
    create: (ctx) => new Uart16550(ctx.irqLine(10), (b) => ctx.serialOut(b), () => ctx.now()),
    fdt: {
      order: 1,
      node: (soc, r) =>
        socNode(soc, r, "serial").prop("interrupts", [r.irq ?? 0]).prop("interrupt-parent", [PHANDLE.plic])
          .prop("clock-frequency", [3686400]).prop("reg", reg64(r.base, r.regSize ?? r.size)).prop("compatible", "ns16550a"),
    },
    reset: (d) => d.reset(),
    poll: (d, now) => d.poll(now),
    deadline: (d) => d.nextDeadlineNs(),
  }),
  ...Array.from({ length: VIRTIO_SLOTS }, (_, slot) => virtioRow(slot)),
];

/** The row called `id`; throws for a name the board does not have. */
export function boardRow(id: string): BoardRow {
  const r = BOARD.find((x) => x.id === id);
  if (r === undefined) throw new Error(`the virt board has no device "${id}"`);
  return r;
}

/** How many virtio-mmio transports the board has (QEMU's VIRTIO_COUNT). */
export const VIRTIO_MMIO_COUNT = VIRTIO_SLOTS;
/** The row of virtio-mmio slot n. */
export function virtioSlotRow(slot: number): BoardRow {
  return boardRow(`virtio${slot}`);
}
