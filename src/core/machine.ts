// The minivm virt board (DESIGN.md §3-§4): one RV32IMA hart, RAM, boot ROM, finisher,
// goldfish RTC, CLINT, PLIC, UART0 and eight virtio-mmio slots at QEMU virt's addresses,
// a generated device tree, and direct ELF boot with `-bios none` semantics (QEMU 7.2
// hw/riscv/virt.c virt_machine_done, boot.c). The core thread drives it with runSlice().

import type { BootRom } from "../../devices/bootrom.js";
import type { Clint } from "../../devices/clint.js";
import type { GuestRam, Migratable, MmioDevice } from "../../devices/device.js";
import type { GoldfishRtc } from "../../devices/goldfish-rtc.js";
import type { Plic } from "../../devices/plic.js";
import type { FinisherEvent, SifiveTest } from "../../devices/sifive-test.js";
import type { Uart16550 } from "../../devices/uart16550.js";
import type { VirtioBackend, VirtioMmio } from "../../devices/virtio-mmio.js";
import { MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, PRV_M, PRV_S } from "../cpu/constants.js";
import { Cpu } from "../cpu/cpu.js";
import { cpuMigratable } from "../cpu/state.js";
import { loadSections, saveSections, type SavedSection, type SectionEntry } from "../migration/sections.js";
import type { VMStateDescription } from "../migration/vmstate.js";
import type { VmdescDevice } from "../migration/vmstate-json.js";
import { translate } from "../cpu/mmu.js";
import { ACCESS_LOAD, MISA_C } from "../cpu/constants.js";
import { takeInterrupt } from "../cpu/trap.js";
import { BOARD, RAM_BASE, RESET_VECTOR, VIRTIO_MMIO_COUNT, type BoardContext, type BoardRow } from "./board.js";
import { Bus } from "./bus.js";
import { parseElf, type ElfImage } from "./elf.js";
import { buildVirtFdt, encodeFdt, fdtLoadAddress } from "./fdt.js";
import { formatInfoRegisters } from "./info-registers.js";
import { Ram } from "../memory/ram.js";
import { PresentGate } from "../memory/present-gate.js";
import { controlView, createSharedRegions, hartWord, presentBitmap, ramView, type SharedRegions } from "./regions.js";
import { CONTROL, HART } from "./shared.js";
import { accelFromEnv, createEngine, type Accel, type CpuEngine } from "../cpu/jit/accel.js";

export interface MachineOptions {
  /** Bytes of RAM at 0x8000_0000; default 128 MiB. */
  ramSize?: number;
  /**
   * The shared regions (RAM, dirty bitmap, hart 0's exit request and LR/SC word), from the
   * main thread; a Machine built without them (unit tests) allocates its own.
   */
  regions?: SharedRegions;
  /** Bytes the guest writes to UART0 (and HTIF console output). */
  serialOut: (bytes: Uint8Array) => void;
  /**
   * QEMU -kernel: an ELF is loaded at its physical addresses and handed on at its lowest one;
   * anything else is a raw image at ALIGN_UP(end of firmware, 4 MiB) (0x8000_0000 without).
   */
  kernel?: Uint8Array;
  /** Firmware at 0x8000_0000 (ELF or raw binary); null or absent = `-bios none`. */
  bios?: Uint8Array | null;
  /** Host clock in ns, for mtime; default performance.now(). wakeAtNs uses the same clock. */
  now?: () => number;
  /** /chosen/bootargs. */
  append?: string;
  /**
   * QEMU -initrd: raw bytes at kernel start + min(RAM / 2, 128 MiB) (QEMU 7.2's
   * riscv_load_initrd), announced in /chosen/linux,initrd-start and -end. Needs a kernel.
   */
  initrd?: Uint8Array;
  /** Backends for virtio-mmio slots 0..7 (missing or null = QEMU's empty slot). */
  virtio?: (VirtioBackend | null)[];
  /**
   * Called when an interrupt line to the hart rises (QEMU's cpu_interrupt -> qemu_cpu_kick):
   * a device that completes I/O while the hart sleeps in WFI must wake the thread running it.
   */
  onInterrupt?: () => void;
  /** The C extension (misa.C, 16-bit instructions); QEMU's `-cpu rv32,c=false` turns it off. Default on. */
  rvc?: boolean;
  /** The execution engine (--accel): interpreter, block compiler, or both compared; default $MINIVM_ACCEL or interp. */
  accel?: Accel;
}

export type SliceResult =
  | { kind: "budget" }
  | { kind: "exit-request" }
  | { kind: "idle"; wakeAtNs: number | null }
  | { kind: "shutdown"; code: number; reason: "guest-shutdown" | "guest-panic" }
  | { kind: "reset"; reason: "guest-reset" }
  /** The debugger's breakpoint, watchpoint or single step stopped the hart (QEMU's EXCP_DEBUG). */
  | { kind: "debug"; watch: DebugWatchHit | null };

/** A watchpoint that the next instruction would trigger: stop before the access, as QEMU's riscv does. */
export interface DebugWatchHit {
  /** The watchpoint's own address and type (2 write, 3 read, 4 access), as GDB set it. */
  addr: number;
  type: 2 | 3 | 4;
}

/**
 * What a debugger asks of the hart between instructions (src/gdb/): breakpoints on virtual
 * pcs, watchpoints on virtual data addresses, single step. While any is active, runSlice
 * checks before every instruction; otherwise it runs at full speed.
 */
export interface DebugControl {
  /** True when runSlice must check each instruction. */
  active(): boolean;
  /** Stop after one instruction, taking no interrupt first (QEMU's SSTEP_NOIRQ). */
  step: boolean;
  /** The first instruction after a resume is not checked (it is where the last stop was). */
  skipOnce: boolean;
  breakpoint(pc: number): boolean;
  /** The watchpoint hit by the instruction about to run at the current pc, if any. */
  watch(cpu: Cpu): DebugWatchHit | null;
}

export interface CpuState {
  pc: number;
  mode: "M" | "S" | "U";
  /** In WFI with nothing pending (QEMU's CPUState.halted). */
  halted: boolean;
  instret: number;
}

/** The guest clock's migratable state: QEMU_CLOCK_VIRTUAL's value when the state was saved. */
interface GuestClockState {
  clock_ns: bigint;
}

const GUEST_CLOCK_VMSD: VMStateDescription<GuestClockState> = {
  name: "timer",
  version_id: 1,
  minimum_version_id: 1,
  fields: [{ name: "clock_ns", type: "int64", range: [0n, 2n ** 62n] }],
};

function isMigratable(dev: MmioDevice): dev is MmioDevice & Migratable<object> {
  return "vmsd" in dev && "adoptState" in dev;
}

/** QEMU 7.2's QOM type of the riscv32 virt board's hart. */
const CPU_TYPE = "rv32-riscv-cpu";

export const DEFAULT_RAM_SIZE = 128 * 1024 * 1024;
export { VIRTIO_MMIO_COUNT };
/** Instructions between looks at the clock and the exit flag. */
const BATCH = 4096;
/**
 * The hart's riscv,isa. With C it also names Zca (the integer compressed subset C implies), as
 * QEMU 8 and later list it; QEMU 7.2 predates the Zc* names and says rv32imac_zicsr_zifencei.
 * Linux reads the single letters and ignores names it does not know.
 */
export const ISA_WITH_C = "rv32imac_zicsr_zifencei_zca";
export const ISA_WITHOUT_C = "rv32ima_zicsr_zifencei";
/**
 * Instructions after a WFI wake-up that run on the interpreter even under the block compiler.
 * An idle guest wakes only to run a short handler and sleep again (the teaching guest's
 * 100 Hz tick is ~530 instructions: M-mode timer trap, S-mode handler, SBI call, UART poll).
 * That code runs 100 times a second from cold host caches, and the interpreter ran it for a
 * third of the block compiler's cost (its region for the firmware's trap page never leaves
 * V8's baseline tier): 0.6% of a host core for the idle guest instead of 1.7%. Code that keeps
 * running past this budget goes to the compiler as before.
 */
const WAKE_INTERP_INSNS = 4096;

/** A board-table row and the device built from it. */
interface Placed {
  readonly row: BoardRow;
  readonly dev: MmioDevice;
}

export class Machine {
  readonly ram: Ram;
  readonly cpu: Cpu;
  /** Postcopy's page-present gate over the shared present bitmap; inactive unless a destination runs in postcopy. */
  readonly gate: PresentGate;
  readonly bus: Bus;
  readonly bootRom: BootRom;
  readonly clint: Clint;
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly rtc: GoldfishRtc;
  readonly finisher: SifiveTest;
  /** virtio-mmio transports by slot. */
  readonly virtio: VirtioMmio[];
  private readonly virtioBackends: readonly (VirtioBackend | null)[];
  /** Every row of the board table with its device, in table order. */
  private readonly placed: Placed[];
  private readonly pollers: Placed[];
  private readonly deadlines: Placed[];
  private readonly dtb: Uint8Array;
  private readonly fdtAddr: number;
  private readonly kernel: ElfImage | null;
  private readonly rawKernel: Uint8Array | null;
  private kernelEntry = 0;
  private readonly initrd: { bytes: Uint8Array; start: number } | null;
  private readonly bios: Uint8Array | null;
  private readonly exitRequest: Int32Array | null;
  /** What runs guest code: the interpreter (cpu) or the block compiler (src/cpu/jit/). */
  readonly engine: CpuEngine;
  /** The guest's clock in ns (QEMU_CLOCK_VIRTUAL): host time minus time spent stopped. */
  private readonly now: () => number;
  private readonly hostNow: () => number;
  private clockOffsetNs = 0;
  private clockStoppedAt: number | null = null;
  private readonly serialOut: (bytes: Uint8Array) => void;
  private tohost = -1;
  private event: SliceResult | null = null;
  /** A shutdown stays in force until reset(). */
  private stopped: SliceResult | null = null;

  constructor(opts: MachineOptions) {
    this.virtioBackends = opts.virtio ?? [];
    const regions = opts.regions ?? createSharedRegions({ ramSize: opts.ramSize ?? DEFAULT_RAM_SIZE });
    if (opts.ramSize !== undefined && opts.ramSize !== regions.ramSize) {
      throw new Error(`ramSize ${opts.ramSize} does not match the shared regions' ${regions.ramSize} bytes`);
    }
    const ramSize = regions.ramSize;
    this.ram = ramView(regions, RAM_BASE);
    this.exitRequest = hartWord(regions, 0, HART.EXIT_REQUEST);
    this.hostNow = opts.now ?? (() => performance.now() * 1e6);
    this.now = () => (this.clockStoppedAt ?? this.hostNow()) - this.clockOffsetNs;
    this.serialOut = opts.serialOut;
    this.bus = new Bus(() => this.clint.mtime(), (pa) => this.htifWrite(pa));
    this.cpu = new Cpu(this.ram.buffer, RAM_BASE, ramSize, this.ram.dirty, this.bus, this.ram.tracking, hartWord(regions, 0, HART.RESERVATION));
    const cpu = this.cpu;
    this.gate = new PresentGate(presentBitmap(regions), null, controlView(regions), CONTROL.POSTCOPY_WAITING);
    cpu.gate = this.gate;
    this.ram.gate = this.gate;
    const rvc = opts.rvc ?? true;
    if (!rvc) cpu.misa &= ~MISA_C;
    this.engine = createEngine(cpu, this.exitRequest, opts.accel ?? accelFromEnv());
    if (this.engine.jit !== null) {
      // Translating is host work, not guest time: the guest clock stands still meanwhile.
      this.engine.jit.translationHook = (translate) => {
        const running = this.clockStoppedAt === null;
        if (running) this.stopClock();
        try {
          translate();
        } finally {
          if (running) this.startClock();
        }
      };
    }
    const onInterrupt = opts.onInterrupt;
    const setMip = (bit: number, level: boolean) => {
      const before = cpu.mip;
      cpu.mip = level ? cpu.mip | bit : cpu.mip & ~bit;
      if (cpu.mip !== before && level && onInterrupt !== undefined) onInterrupt();
    };

    const isElf = (b: Uint8Array) => b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
    this.kernel = opts.kernel && isElf(opts.kernel) ? parseElf(opts.kernel) : null;
    this.rawKernel = opts.kernel && !isElf(opts.kernel) ? opts.kernel : null;
    this.bios = opts.bios ?? null;
    this.initrd = null;
    if (opts.initrd !== undefined) {
      if (opts.kernel === undefined) throw new Error("-initrd only allowed with -kernel option");
      const kernelLow = this.kernel !== null ? this.kernel.lowAddr : alignUp4M(imageEnd(this.bios));
      const start = kernelLow + Math.min(ramSize / 2, 128 * 2 ** 20);
      if (start + opts.initrd.length > RAM_BASE + ramSize) {
        throw new Error(`initrd of ${opts.initrd.length} bytes at 0x${start.toString(16)} does not fit in RAM`);
      }
      this.initrd = { bytes: opts.initrd, start };
    }
    const initrd = this.initrd === null ? undefined : { start: this.initrd.start, end: this.initrd.start + this.initrd.bytes.length };
    // QEMU 7.2's riscv_isa_string: the single letters in misa order, then the Z extensions.
    this.dtb = encodeFdt(buildVirtFdt({ ramBase: RAM_BASE, ramSize, bootargs: opts.append, initrd, isa: rvc ? ISA_WITH_C : ISA_WITHOUT_C }));
    this.fdtAddr = fdtLoadAddress(RAM_BASE, ramSize, this.dtb.length);

    const built = new Map<string, MmioDevice>();
    let plic: Plic | null = null;
    const ctx: BoardContext = {
      ram: this.ram as GuestRam,
      hart: {
        setMsip: (l) => setMip(MIP_MSIP, l),
        setMtip: (l) => setMip(MIP_MTIP, l),
        setMeip: (l) => setMip(MIP_MEIP, l),
        setSeipExternal: (l) => {
          cpu.seipExternal = l;
          setMip(MIP_SEIP, l || cpu.seipSoftware);
        },
      },
      now: () => this.now(),
      serialOut: (b) => this.serialOut(b),
      finisher: (e) => this.finisherEvent(e),
      irqLine: (irq) => {
        if (plic === null) throw new Error(`interrupt ${irq} wired before the PLIC exists: order the board table`);
        return plic.line(irq);
      },
      virtioBackend: (slot) => opts.virtio?.[slot] ?? null,
    };
    this.placed = BOARD.map((row) => {
      const dev = row.create(ctx);
      if (built.has(row.id)) throw new Error(`board table names "${row.id}" twice`);
      built.set(row.id, dev);
      if (row.id === "plic") plic = dev as Plic;
      // Region sizes are QEMU 7.2's MemoryRegions (`info mtree`), not the DTB's reg sizes.
      this.bus.map(row.base, row.size, dev, row.sizes, row.kind === "rom");
      return { row, dev };
    });
    this.pollers = this.placed.filter((p) => p.row.poll !== undefined);
    this.deadlines = this.placed.filter((p) => p.row.deadline !== undefined);
    const get = <D extends MmioDevice>(id: string): D => {
      const d = built.get(id);
      if (d === undefined) throw new Error(`the board table has no "${id}"`);
      return d as D;
    };
    this.bootRom = get<BootRom>("mrom");
    this.finisher = get<SifiveTest>("test");
    this.plic = get<Plic>("plic");
    this.clint = get<Clint>("clint");
    this.rtc = get<GoldfishRtc>("rtc");
    this.uart = get<Uart16550>("uart0");
    this.virtio = Array.from({ length: VIRTIO_MMIO_COUNT }, (_, n) => get<VirtioMmio>(`virtio${n}`));
    this.reset();
  }

  /** system_reset: hart and devices to power-on state; ROM, firmware, kernel and DTB reloaded. */
  reset(): void {
    this.event = null;
    this.stopped = null;
    this.wakeInterp = 0;
    this.cpu.reset(RESET_VECTOR);
    this.engine.flush();
    // QEMU's system_reset resets every device, virtio transports included (status 0, queues forgotten).
    for (const p of this.placed) p.row.reset?.(p.dev);
    // riscv_find_and_load_firmware: without firmware its "end" is the DRAM base.
    const firmwareEnd = this.bios ? this.loadImage(this.bios) : RAM_BASE;
    this.tohost = -1;
    this.cpu.htifPage = -1;
    this.kernelEntry = 0;
    if (this.rawKernel) {
      // riscv_calc_kernel_start_addr (rv32): 4 MiB aligned after the firmware.
      const start = alignUp4M(firmwareEnd);
      if (!this.ram.dmaWrite(start, this.rawKernel)) {
        throw new Error(`kernel image of ${this.rawKernel.length} bytes at 0x${start.toString(16)} does not fit in RAM`);
      }
      this.kernelEntry = start;
    }
    if (this.kernel) {
      this.kernelEntry = this.kernel.lowAddr;
      this.loadElf(this.kernel);
      const t = this.kernel.symbols.get("tohost");
      if (t !== undefined && this.ram.contains(t, 8)) {
        this.tohost = t;
        this.cpu.htifPage = (t - RAM_BASE) >>> 12;
      }
    }
    if (this.initrd !== null) this.ram.dmaWrite(this.initrd.start, this.initrd.bytes);
    this.ram.dmaWrite(this.fdtAddr, this.dtb);
    this.bootRom.program({ startAddr: RAM_BASE, fdtAddr: this.fdtAddr, nextAddr: this.kernelEntry });
  }

  /** Load firmware (ELF or raw at the DRAM base); returns the address just past it. */
  private loadImage(image: Uint8Array): number {
    if (image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46) {
      const elf = parseElf(image);
      this.loadElf(elf);
      return Math.max(RAM_BASE, ...elf.segments.map((s) => s.paddr + s.memsz));
    }
    if (!this.ram.dmaWrite(RAM_BASE, image)) {
      throw new Error(`firmware of ${image.length} bytes does not fit in ${this.ram.size} bytes of RAM`);
    }
    return RAM_BASE + image.length;
  }

  private loadElf(elf: ElfImage): void {
    for (const seg of elf.segments) {
      if (!this.ram.contains(seg.paddr, seg.memsz)) {
        throw new Error(
          `ELF segment at 0x${seg.paddr.toString(16)} (0x${seg.memsz.toString(16)} bytes) is outside RAM ` +
            `0x${RAM_BASE.toString(16)}-0x${(RAM_BASE + this.ram.size - 1).toString(16)}`,
        );
      }
      this.ram.dmaWrite(seg.paddr, seg.data);
      if (seg.memsz > seg.data.length) this.ram.dmaWrite(seg.paddr + seg.data.length, new Uint8Array(seg.memsz - seg.data.length));
    }
  }

  private finisherEvent(e: FinisherEvent): void {
    if (e.kind === "reset") this.event = { kind: "reset", reason: "guest-reset" };
    else this.event = { kind: "shutdown", code: e.code, reason: e.reason };
  }

  /** Spike HTIF (riscv-tests): act on the write of tohost's high word, as QEMU's htif does. */
  private htifWrite(pa: number): void {
    if (this.tohost < 0 || pa < this.tohost + 4 || pa >= this.tohost + 8) return;
    const lo = this.ram.load32(this.tohost);
    const hi = this.ram.load32(this.tohost + 4);
    if (lo === 0 && hi === 0) return;
    const device = hi >>> 24;
    const cmd = (hi >>> 16) & 0xff;
    const payload = (hi & 0xffff) * 2 ** 32 + lo;
    if (device === 0 && cmd === 0 && payload % 2 === 1) {
      const code = Math.floor(payload / 2);
      this.event = { kind: "shutdown", code, reason: code === 0 ? "guest-shutdown" : "guest-panic" };
      return;
    }
    if (device === 0 && cmd === 0) this.htifSyscall(payload);
    else if (device === 1 && cmd === 1) this.serialOut(Uint8Array.of(lo & 0xff));
    this.ram.store32(this.tohost, 0);
    this.ram.store32(this.tohost + 4, 0);
    const fromhost = this.kernel?.symbols.get("fromhost");
    if (fromhost !== undefined && this.ram.contains(fromhost, 8)) {
      this.ram.store32(fromhost, device === 0 ? 1 : 0);
      this.ram.store32(fromhost + 4, ((device << 24) | (cmd << 16)) >>> 0);
    }
  }

  /** The proxy-kernel syscall block riscv-tests' printf uses: only write(1 or 2, buf, len). */
  private htifSyscall(addr: number): void {
    if (!this.ram.contains(addr, 32)) return;
    const which = this.ram.load32(addr);
    if (which !== 64) return;
    const fd = this.ram.load32(addr + 8);
    const buf = this.ram.load32(addr + 16);
    const len = this.ram.load32(addr + 24);
    if ((fd === 1 || fd === 2) && this.ram.contains(buf, len)) {
      const out = new Uint8Array(len);
      this.ram.dmaRead(buf, out);
      this.serialOut(out);
    }
  }

  /**
   * Run the hart for up to `maxInstructions`. Ends early on an exit request, when the guest
   * waits for an interrupt with nothing pending (WFI), or when it asks for shutdown/reset.
   */
  runSlice(maxInstructions: number): SliceResult {
    if (this.stopped) return this.stopped;
    if (this.debug !== null && this.debug.active()) return this.runSliceDebug(this.debug, maxInstructions);
    const cpu = this.cpu;
    const exit = this.exitRequest;
    let done = 0;
    while (done < maxInstructions) {
      if (exit !== null && Atomics.load(exit, 0) !== 0) return { kind: "exit-request" };
      const now = this.now();
      const pollers = this.pollers;
      for (let i = 0; i < pollers.length; i++) pollers[i].row.poll?.(pollers[i].dev, now);
      if (cpu.wfi) {
        if ((cpu.mip & cpu.mie) === 0) return { kind: "idle", wakeAtNs: this.wakeAt() };
        cpu.wfi = false;
        if (this.engine.accel === "jit") this.wakeInterp = WAKE_INTERP_INSNS;
      }
      if (cpu.mip !== 0) takeInterrupt(cpu);
      const budget = Math.min(BATCH, maxInstructions - done);
      if (this.wakeInterp > 0) {
        // Both engines keep all their state in cpu, so either may run the next instruction.
        const k = cpu.execute(Math.min(budget, this.wakeInterp));
        this.wakeInterp -= k;
        done += k;
      } else {
        done += this.engine.execute(budget);
      }
      if (this.event !== null) {
        const e = this.event;
        this.event = null;
        if (e.kind === "shutdown") this.stopped = e;
        return e;
      }
    }
    return { kind: "budget" };
  }

  /** Instructions the interpreter still runs after the last WFI wake-up (WAKE_INTERP_INSNS). */
  private wakeInterp = 0;

  /** The debugger's view (src/gdb/): set while a GDB stub is attached. */
  debug: DebugControl | null = null;

  /** runSlice one instruction at a time, checking breakpoints and watchpoints before each. */
  private runSliceDebug(d: DebugControl, maxInstructions: number): SliceResult {
    const cpu = this.cpu;
    const exit = this.exitRequest;
    let done = 0;
    while (done < maxInstructions) {
      if (exit !== null && Atomics.load(exit, 0) !== 0) return { kind: "exit-request" };
      const now = this.now();
      for (const p of this.pollers) p.row.poll?.(p.dev, now);
      if (cpu.wfi) {
        if ((cpu.mip & cpu.mie) === 0) return { kind: "idle", wakeAtNs: this.wakeAt() };
        cpu.wfi = false;
      }
      if (!d.step && cpu.mip !== 0) takeInterrupt(cpu);
      if (!d.skipOnce) {
        if (d.breakpoint(cpu.pc >>> 0)) return { kind: "debug", watch: null };
        const w = d.watch(cpu);
        if (w !== null) return { kind: "debug", watch: w };
      }
      d.skipOnce = false;
      done += cpu.execute(1);
      if (this.event !== null) {
        const e = this.event;
        this.event = null;
        if (e.kind === "shutdown") this.stopped = e;
        return e;
      }
      if (d.step) return { kind: "debug", watch: null };
    }
    return { kind: "budget" };
  }

  /**
   * Stop the guest's clock, as QEMU does on `stop`: mtime and the UART's timeouts freeze,
   * so a paused guest does not find its timers long overdue on `cont`.
   */
  stopClock(): void {
    if (this.clockStoppedAt === null) this.clockStoppedAt = this.hostNow();
  }

  /** Restart the guest's clock where stopClock() left it. */
  startClock(): void {
    if (this.clockStoppedAt === null) return;
    this.clockOffsetNs += this.hostNow() - this.clockStoppedAt;
    this.clockStoppedAt = null;
  }

  /** When the next timer is due, in the host clock (MachineOptions.now), or null. */
  private wakeAt(): number | null {
    const at = this.wakeAtGuest();
    return at === null ? null : at + this.clockOffsetNs;
  }

  private wakeAtGuest(): number | null {
    let at: number | null = null;
    const now = this.now();
    for (const p of this.deadlines) {
      const t = p.row.deadline?.(p.dev, now, this.cpu.mie) ?? null;
      if (t !== null) at = at === null ? t : Math.min(at, t);
    }
    return at;
  }

  /** Bytes typed at the console. */
  serialInput(bytes: Uint8Array): void {
    this.uart.input(bytes);
  }

  dumpDtb(): Uint8Array {
    return this.dtb.slice();
  }

  get dtbAddress(): number {
    return this.fdtAddr;
  }

  cpuState(): CpuState {
    const p = this.cpu.priv;
    return { pc: this.cpu.pc >>> 0, mode: p === PRV_M ? "M" : p === PRV_S ? "S" : "U", halted: this.cpu.wfi, instret: this.cpu.instret };
  }

  /** HMP `info registers`, in QEMU 7.2's riscv_cpu_dump_state layout for this hart. */
  infoRegisters(): string {
    return formatInfoRegisters(this.cpu);
  }

  /** Physical memory read for HMP `xp` (RAM, ROM or device); null for a hole. */
  readPhys(addr: number, size: 1 | 2 | 4): number | null {
    if (this.ram.contains(addr, size)) {
      const off = addr - RAM_BASE;
      return size === 4 ? this.ram.view.getUint32(off, true) : size === 2 ? this.ram.view.getUint16(off, true) : this.ram.bytes[off];
    }
    const v = this.bus.load(addr, size);
    if (this.bus.fault) {
      this.bus.fault = false;
      return null;
    }
    return v;
  }

  /**
   * The sections that migrate, in load order: the guest clock first (devices' timers are
   * absolute guest times), then the hart, then every board row whose device has a VMState
   * description, in table order (the PLIC before the devices that drive its lines).
   */
  migrationEntries(): SectionEntry[] {
    const cpu = cpuMigratable(this.cpu);
    const entries: SectionEntry[] = [
      { idstr: GUEST_CLOCK_VMSD.name, instanceId: 0, owner: this.clockMigratable() },
      { idstr: cpu.vmsd.name, instanceId: 0, owner: cpu },
    ];
    for (const p of this.placed) {
      if (!isMigratable(p.dev)) continue;
      entries.push({ idstr: p.dev.vmsd.name, instanceId: p.row.instanceId ?? 0, owner: p.dev });
    }
    return entries;
  }

  /**
   * Every VMState description this machine migrates, keyed by QOM type name as QEMU's
   * `-dump-vmstate` keys them (the guest clock under its section name, "timer").
   */
  vmstateTypes(): { typeName: string; vmsd: VMStateDescription<never> }[] {
    const out: { typeName: string; vmsd: VMStateDescription<never> }[] = [
      { typeName: GUEST_CLOCK_VMSD.name, vmsd: GUEST_CLOCK_VMSD as VMStateDescription<never> },
      { typeName: CPU_TYPE, vmsd: cpuMigratable(this.cpu).vmsd as VMStateDescription<never> },
    ];
    for (const p of this.placed) {
      if (isMigratable(p.dev)) out.push({ typeName: p.row.type, vmsd: p.dev.vmsd as VMStateDescription<never> });
    }
    return out;
  }

  /** The guest clock as a section (QEMU's "timer" section carries cpu_clock_offset the same way). */
  private clockMigratable(): Migratable<GuestClockState> {
    return {
      vmsd: GUEST_CLOCK_VMSD,
      saveState: () => ({ clock_ns: BigInt(Math.round(this.now())) }),
      adoptState: (s) => {
        // Continue from the saved instant: whatever the host clock reads here, now() == clock_ns.
        const host = this.clockStoppedAt ?? this.hostNow();
        this.clockOffsetNs = host - Number(s.clock_ns);
      },
    };
  }

  /**
   * Wait until no device has a request in flight (QEMU's bdrv_drain_all before a migration's
   * device state is saved); the VM should be stopped, so nothing new starts meanwhile.
   */
  async drainIo(): Promise<void> {
    await Promise.all(this.virtioBackends.map((b) => b?.drain?.()));
  }

  /** The sections this machine saves and accepts, as (idstr, instance id). */
  sectionIds(): { idstr: string; instanceId: number }[] {
    return this.migrationEntries().map((e) => ({ idstr: e.idstr, instanceId: e.instanceId }));
  }

  /** save(), with the vmdesc entry of each section that a migration stream ends with. */
  saveWithVmdesc(): { sections: SavedSection[]; vmdesc: VmdescDevice[] } {
    const vmdesc: VmdescDevice[] = [];
    const sections = saveSections(this.migrationEntries(), vmdesc);
    return { sections, vmdesc };
  }

  /**
   * Device and CPU sections for migration; RAM travels separately (this.ram, dirty bitmap).
   * With `vmdesc`, also collects each section's vmdesc entry for the stream's JSON.
   */
  save(vmdesc?: VmdescDevice[]): SavedSection[] {
    return saveSections(this.migrationEntries(), vmdesc);
  }

  /**
   * Restore what save() produced on a machine built with the same options. Every section is
   * decoded and checked before any is adopted: on error nothing changed.
   */
  load(sections: readonly SavedSection[]): void {
    loadSections(this.migrationEntries(), sections);
    // RAM arrived without write tracking (the migration stream writes it directly).
    this.engine.flush();
    this.event = null;
    this.stopped = null;
    this.wakeInterp = 0;
  }

  /**
   * Guest-virtual to physical as HMP `x` sees it: the current privilege's translation
   * (MPRV honoured), without setting A/D bits or raising faults. null = unmapped.
   */
  virtToPhys(va: number): number | null {
    const priv = this.cpu.dataPriv();
    const pa = translate(this.cpu, va, ACCESS_LOAD, priv, true);
    return pa < 0 ? null : pa;
  }

  /** HMP `info mtree`, the `memory` address space in QEMU's format. */
  mtree(): string {
    const hex = (v: number) => v.toString(16).padStart(16, "0");
    const lines = ["address-space: memory", "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"];
    const regions = this.placed.map((p) => ({ base: p.row.base, size: p.row.size, kind: p.row.kind as string, name: p.dev.name }));
    regions.push({ base: RAM_BASE, size: this.ram.size, kind: "ram", name: "riscv_virt_board.ram" });
    regions.sort((a, b) => a.base - b.base);
    for (const r of regions) {
      lines.push(`    ${hex(r.base)}-${hex(r.base + r.size - 1)} (prio 0, ${r.kind}): ${r.name}`);
    }
    return lines.join("\n") + "\n";
  }
}

/** riscv_calc_kernel_start_addr (rv32): a raw kernel goes 4 MiB-aligned after the firmware. */
function alignUp4M(addr: number): number {
  return Math.ceil(addr / 0x400000) * 0x400000;
}

/** Where a firmware image (ELF or raw at the DRAM base) ends; the DRAM base without one. */
function imageEnd(image: Uint8Array | null): number {
  if (image === null) return RAM_BASE;
  if (image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46) {
    return Math.max(RAM_BASE, ...parseElf(image).segments.map((s) => s.paddr + s.memsz));
  }
  return RAM_BASE + image.length;
}
