// A flattened device tree (Devicetree Specification v0.4, chapter 5: header, memory
// reservation block, structure block, strings block) built by code, and the tree of the
// minivm virt board: QEMU 7.2's node names, compatibles, reg and interrupts
// (hw/riscv/virt.c create_fdt*), restricted to the devices minivm emulates.

import { FINISHER_PASS, FINISHER_RESET } from "../../devices/sifive-test.js";
import { BOARD, PHANDLE, reg64, TIMEBASE_FREQ, type BoardRow } from "./board.js";

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
  /** /chosen/linux,initrd-start and -end (end exclusive), as QEMU 7.2 writes them: 32-bit cells. */
  initrd?: { start: number; end: number };
  /** riscv,isa string of the hart. */
  isa?: string;
}

/**
 * The device tree of the board minivm emulates, in QEMU's node order: the fixed nodes here,
 * one node per board-table row that has one (placed by its `fdt.order`).
 */
export function buildVirtFdt(o: VirtFdtOptions, rows: readonly BoardRow[] = BOARD): FdtNode {
  const root = new FdtNode("");
  root.prop("#address-cells", [2]).prop("#size-cells", [2]).prop("compatible", "riscv-virtio").prop("model", "riscv-virtio,qemu");

  const chosen = root.child("chosen");
  if (o.bootargs !== undefined) chosen.prop("bootargs", o.bootargs);
  if (o.initrd !== undefined) chosen.prop("linux,initrd-start", [o.initrd.start]).prop("linux,initrd-end", [o.initrd.end]);
  const console = rows.find((r) => r.id === "uart0");
  if (console !== undefined) chosen.prop("stdout-path", `/soc/serial@${console.base.toString(16)}`);

  // syscon-poweroff/-reboot write the finisher's codes into the test device (virt.c create_fdt_reset).
  root.child("poweroff").prop("value", [FINISHER_PASS]).prop("offset", [0]).prop("regmap", [PHANDLE.test]).prop("compatible", "syscon-poweroff");
  root.child("reboot").prop("value", [FINISHER_RESET]).prop("offset", [0]).prop("regmap", [PHANDLE.test]).prop("compatible", "syscon-reboot");

  root.child(`memory@${o.ramBase.toString(16)}`).prop("device_type", "memory").prop("reg", reg64(o.ramBase, o.ramSize));

  const cpus = root.child("cpus");
  cpus.prop("#address-cells", [1]).prop("#size-cells", [0]).prop("timebase-frequency", [TIMEBASE_FREQ]);
  const cpu = cpus.child("cpu@0");
  cpu.prop("phandle", [PHANDLE.cpu]).prop("device_type", "cpu").prop("reg", [0]).prop("status", "okay")
    .prop("compatible", "riscv").prop("riscv,isa", o.isa ?? "rv32ima_zicsr_zifencei").prop("mmu-type", "riscv,sv32");
  cpu.child("interrupt-controller").prop("#interrupt-cells", [1]).prop("interrupt-controller", null)
    .prop("compatible", "riscv,cpu-intc").prop("phandle", [PHANDLE.intc]);
  cpus.child("cpu-map").child("cluster0").child("core0").prop("cpu", [PHANDLE.cpu]);

  const soc = root.child("soc");
  soc.prop("#address-cells", [2]).prop("#size-cells", [2]).prop("compatible", "simple-bus").prop("ranges", null);
  const withNodes = rows.filter((r) => r.fdt !== undefined).sort((a, b) => (a.fdt?.order ?? 0) - (b.fdt?.order ?? 0));
  for (const r of withNodes) r.fdt?.node(soc, r);
  return root;
}

/** QEMU's riscv_load_fdt placement: ALIGN_DOWN(min(DRAM end, 3 GiB) - size, 2 MiB). */
export function fdtLoadAddress(ramBase: number, ramSize: number, fdtSize: number): number {
  const end = Math.min(ramBase + ramSize, 3 * 2 ** 30);
  const twoMiB = 2 * 2 ** 20;
  return Math.floor((end - fdtSize) / twoMiB) * twoMiB;
}
