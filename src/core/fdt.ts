// A flattened device tree (Devicetree Specification v0.4, chapter 5: header, memory
// reservation block, structure block, strings block) built by code, and the tree of the
// minivm virt board: QEMU 7.2's node names, compatibles, reg and interrupts
// (hw/riscv/virt.c create_fdt*), restricted to the devices minivm emulates.

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_END = 9;

/** u32 cells, a string, a string list, raw bytes, or empty (a boolean property). */
export type FdtValue = number[] | string | string[] | Uint8Array | null;

export class FdtNode {
  readonly props: [string, FdtValue][] = [];
  readonly children: FdtNode[] = [];
  constructor(readonly name: string) {}

  prop(name: string, value: FdtValue): this {
    this.props.push([name, value]);
    return this;
  }

  child(name: string): FdtNode {
    const n = new FdtNode(name);
    this.children.push(n);
    return n;
  }
}

function encodeValue(v: FdtValue): Uint8Array {
  if (v === null) return new Uint8Array(0);
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return new TextEncoder().encode(v + "\0");
  if (v.length > 0 && typeof v[0] === "string") return new TextEncoder().encode((v as string[]).join("\0") + "\0");
  const cells = v as number[];
  const out = new Uint8Array(cells.length * 4);
  const dv = new DataView(out.buffer);
  cells.forEach((c, i) => dv.setUint32(i * 4, c >>> 0));
  return out;
}

/** Serialise a tree to a DTB (version 17, big-endian, as dtc and libfdt write it). */
export function encodeFdt(root: FdtNode, bootCpuid = 0): Uint8Array {
  const struct: number[] = [];
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const u32 = (v: number) => struct.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  const bytes = (b: Uint8Array) => {
    for (const x of b) struct.push(x);
    while (struct.length % 4 !== 0) struct.push(0);
  };
  const stringOffset = (s: string) => {
    let off = stringOffsets.get(s);
    if (off === undefined) {
      off = strings.length;
      for (const b of new TextEncoder().encode(s)) strings.push(b);
      strings.push(0);
      stringOffsets.set(s, off);
    }
    return off;
  };
  const walk = (n: FdtNode) => {
    u32(FDT_BEGIN_NODE);
    bytes(new TextEncoder().encode(n.name + "\0"));
    for (const [name, value] of n.props) {
      const data = encodeValue(value);
      u32(FDT_PROP);
      u32(data.length);
      u32(stringOffset(name));
      bytes(data);
    }
    for (const c of n.children) walk(c);
    u32(FDT_END_NODE);
  };
  walk(root);
  u32(FDT_END);

  const headerSize = 40;
  const rsvmapOff = headerSize;
  const rsvmapSize = 16; // one terminating (0, 0) entry
  const structOff = rsvmapOff + rsvmapSize;
  const stringsOff = structOff + struct.length;
  const total = stringsOff + strings.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  const header = [FDT_MAGIC, total, structOff, stringsOff, rsvmapOff, 17, 16, bootCpuid, strings.length, struct.length];
  header.forEach((v, i) => dv.setUint32(i * 4, v >>> 0));
  out.set(struct, structOff);
  out.set(strings, stringsOff);
  return out;
}

export interface VirtFdtOptions {
  ramBase: number;
  ramSize: number;
  /** /chosen/bootargs, when a command line is given. */
  bootargs?: string;
  /** riscv,isa string of the hart. */
  isa?: string;
}

const PHANDLE_CPU = 1;
const PHANDLE_INTC = 2;
const PHANDLE_PLIC = 3;
const PHANDLE_TEST = 4;

function reg64(base: number, size: number): number[] {
  return [Math.floor(base / 2 ** 32), base >>> 0, Math.floor(size / 2 ** 32), size >>> 0];
}

/** The device tree of the board minivm emulates, in QEMU's node order. */
export function buildVirtFdt(o: VirtFdtOptions): FdtNode {
  const root = new FdtNode("");
  root.prop("#address-cells", [2]).prop("#size-cells", [2]).prop("compatible", "riscv-virtio").prop("model", "riscv-virtio,qemu");

  const chosen = root.child("chosen");
  if (o.bootargs !== undefined) chosen.prop("bootargs", o.bootargs);
  chosen.prop("stdout-path", "/soc/serial@10000000");

  root.child("poweroff").prop("value", [0x5555]).prop("offset", [0]).prop("regmap", [PHANDLE_TEST]).prop("compatible", "syscon-poweroff");
  root.child("reboot").prop("value", [0x7777]).prop("offset", [0]).prop("regmap", [PHANDLE_TEST]).prop("compatible", "syscon-reboot");

  root.child(`memory@${o.ramBase.toString(16)}`).prop("device_type", "memory").prop("reg", reg64(o.ramBase, o.ramSize));

  const cpus = root.child("cpus");
  cpus.prop("#address-cells", [1]).prop("#size-cells", [0]).prop("timebase-frequency", [10_000_000]);
  const cpu = cpus.child("cpu@0");
  cpu.prop("phandle", [PHANDLE_CPU]).prop("device_type", "cpu").prop("reg", [0]).prop("status", "okay")
    .prop("compatible", "riscv").prop("riscv,isa", o.isa ?? "rv32ima_zicsr_zifencei").prop("mmu-type", "riscv,sv32");
  cpu.child("interrupt-controller").prop("#interrupt-cells", [1]).prop("interrupt-controller", null)
    .prop("compatible", "riscv,cpu-intc").prop("phandle", [PHANDLE_INTC]);
  cpus.child("cpu-map").child("cluster0").child("core0").prop("cpu", [PHANDLE_CPU]);

  const soc = root.child("soc");
  soc.prop("#address-cells", [2]).prop("#size-cells", [2]).prop("compatible", "simple-bus").prop("ranges", null);
  soc.child("rtc@101000").prop("interrupts", [11]).prop("interrupt-parent", [PHANDLE_PLIC])
    .prop("reg", reg64(0x101000, 0x1000)).prop("compatible", "google,goldfish-rtc");
  soc.child("serial@10000000").prop("interrupts", [10]).prop("interrupt-parent", [PHANDLE_PLIC])
    .prop("clock-frequency", [3686400]).prop("reg", reg64(0x10000000, 0x100)).prop("compatible", "ns16550a");
  soc.child("test@100000").prop("phandle", [PHANDLE_TEST]).prop("reg", reg64(0x100000, 0x1000))
    .prop("compatible", ["sifive,test1", "sifive,test0", "syscon"]);
  for (let n = 7; n >= 0; n--) {
    const base = 0x10001000 + n * 0x1000;
    soc.child(`virtio_mmio@${base.toString(16)}`).prop("interrupts", [1 + n]).prop("interrupt-parent", [PHANDLE_PLIC])
      .prop("reg", reg64(base, 0x1000)).prop("compatible", "virtio,mmio");
  }
  soc.child("plic@c000000").prop("phandle", [PHANDLE_PLIC]).prop("riscv,ndev", [96]).prop("reg", reg64(0xc000000, 0x600000))
    .prop("interrupts-extended", [PHANDLE_INTC, 11, PHANDLE_INTC, 9]).prop("interrupt-controller", null)
    .prop("compatible", ["sifive,plic-1.0.0", "riscv,plic0"]).prop("#address-cells", [0]).prop("#interrupt-cells", [1]);
  soc.child("clint@2000000").prop("interrupts-extended", [PHANDLE_INTC, 3, PHANDLE_INTC, 7])
    .prop("reg", reg64(0x2000000, 0x10000)).prop("compatible", ["sifive,clint0", "riscv,clint0"]);
  return root;
}

/** QEMU's riscv_load_fdt placement: ALIGN_DOWN(min(DRAM end, 3 GiB) - size, 2 MiB). */
export function fdtLoadAddress(ramBase: number, ramSize: number, fdtSize: number): number {
  const end = Math.min(ramBase + ramSize, 3 * 2 ** 30);
  const twoMiB = 2 * 2 ** 20;
  return Math.floor((end - fdtSize) / twoMiB) * twoMiB;
}
