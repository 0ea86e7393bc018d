// The VMState interpreter against every description minivm has: random states round-trip
// byte for byte; truncated, extended and bit-flipped sections are refused (naming the
// field) or decode to a valid state, never a crash or a foreign key; versions and
// subsections are checked as QEMU checks them; vmdesc and -dump-vmstate have QEMU's shape.

import { describe, expect, it } from "vitest";
import { Clint, CLINT_VMSD } from "../../devices/clint.js";
import { GOLDFISH_RTC_VMSD, GoldfishRtc } from "../../devices/goldfish-rtc.js";
import { Plic, PLIC_VMSD } from "../../devices/plic.js";
import { Uart16550, UART16550_VMSD } from "../../devices/uart16550.js";
import { VIRTIO_BLK_VMSD } from "../../devices/virtio-blk.js";
import { virtioMmioVmsd, type VirtioMmioState } from "../../devices/virtio-mmio.js";
import { virtqueuePowerOn } from "../../devices/virtqueue.js";
import { Cpu } from "../../src/cpu/cpu.js";
import { CPU_VMSD, saveCpuState } from "../../src/cpu/state.js";
import { ByteReader, ByteWriter } from "../../src/migration/bytes.js";
import { loadState, loadStateBytes, saveStateBytes, VMStateError, type VMStateDescription, type VMStateField } from "../../src/migration/vmstate.js";
import { dumpVmstate, type VmdescSection } from "../../src/migration/vmstate-json.js";
import { xorshift32 } from "../helpers/rng.js";

/** A small deterministic PRNG (xorshift32, raw 32-bit outputs), so failures reproduce. */
const rng = xorshift32;

type Bag = Record<string, unknown>;

/** A random value for one scalar element that the field's checks accept. */
function randomScalar(f: Extract<VMStateField<never>, { type: string; array?: number }>, r: () => number): number | bigint | boolean {
  const t = f.type;
  if ("oneOf" in f && f.oneOf) return f.oneOf[r() % f.oneOf.length];
  const big = (): bigint => (BigInt(r()) << 32n) | BigInt(r());
  let v: number | bigint | boolean;
  switch (t) {
    case "bool":
      return (r() & 1) === 1;
    case "uint8":
      v = r() & 0xff;
      break;
    case "uint16":
      v = r() & 0xffff;
      break;
    case "uint32":
      v = r() >>> 0;
      break;
    case "int32":
      v = r() | 0;
      break;
    case "uint64":
      // Edges matter most for 64-bit values: all ones, 2^53 + 1, small numbers.
      v = [0xffffffffffffffffn, 2n ** 53n + 1n, BigInt(r() & 0xff), big()][r() % 4];
      break;
    case "int64":
      v = BigInt.asIntN(64, big());
      break;
    case "timer":
      v = r() % 2 === 0 ? -1n : big() >> 2n;
      break;
    default:
      throw new Error(`no generator for ${t}`);
  }
  if ("range" in f && f.range) {
    const [lo, hi] = f.range;
    if (typeof lo === "bigint" && typeof hi === "bigint") {
      const x = BigInt(v as bigint);
      v = lo + (((x % (hi - lo + 1n)) + (hi - lo + 1n)) % (hi - lo + 1n));
    } else {
      const span = Number(hi) - Number(lo) + 1;
      v = Number(lo) + (((Number(v) % span) + span) % span);
    }
  }
  return v;
}

/** Fill every described field of a copy of `template` with random legal values. */
function randomState(vmsd: VMStateDescription<never>, template: Bag, r: () => number): Bag {
  const s = structuredClone(template);
  fill(vmsd, s, r);
  return s;
}

function fill(vmsd: VMStateDescription<never>, s: Bag, r: () => number): void {
  const lengthFields = new Map<string, number>();
  for (const f of vmsd.fields) if (f.type === "vbuffer") lengthFields.set(f.lengthField, f.max);
  for (const f of vmsd.fields) {
    const cur = s[f.name];
    if (f.type === "buffer") {
      s[f.name] = Uint8Array.from({ length: f.size }, () => r() & 0xff);
    } else if (f.type === "vbuffer") {
      s[f.name] = Uint8Array.from({ length: s[f.lengthField] as number }, () => r() & 0xff);
    } else if (f.type === "struct") {
      if (f.array === undefined) fill(f.vmsd, cur as Bag, r);
      else for (const e of cur as Bag[]) fill(f.vmsd, e, r);
    } else if (lengthFields.has(f.name)) {
      s[f.name] = r() % Math.min(lengthFields.get(f.name)!, 40);
    } else if (f.array === undefined) {
      s[f.name] = randomScalar(f, r);
    } else {
      const vals = Array.from({ length: f.array }, () => randomScalar(f, r));
      s[f.name] = ArrayBuffer.isView(cur) ? (cur.constructor as unknown as { from(a: unknown[]): unknown }).from(vals) : vals;
    }
  }
  // Subsections: sometimes all-default (so not needed), sometimes random.
  for (const sub of vmsd.subsections ?? []) if (r() % 3 !== 0) fill(sub, s, r);
}

interface Case {
  name: string;
  vmsd: VMStateDescription<never>;
  template: () => Bag;
  /** Cross-field rules a description enforces in post_load. */
  fixup?: (s: Bag) => void;
}

const now = () => 1_000_000;
const transportTemplate = (): VirtioMmioState => ({
  status: 0,
  isr: 0,
  config_generation: 0,
  device_features_sel: 0,
  driver_features_sel: 0,
  driver_features: [0, 0],
  queue_sel: 0,
  queues: [virtqueuePowerOn()],
  backend: { writeback: true },
});

const CASES: Case[] = [
  { name: "cpu", vmsd: CPU_VMSD as VMStateDescription<never>, template: () => saveCpuState(new Cpu(new SharedArrayBuffer(4096), 0x80000000, 4096, new Int32Array(1), {} as never)) as unknown as Bag, fixup: (s) => ((s.x as Int32Array)[0] = 0) },
  { name: "clint", vmsd: CLINT_VMSD as VMStateDescription<never>, template: () => new Clint({ setMsip: () => {}, setMtip: () => {} }, now).saveState() as unknown as Bag },
  { name: "plic", vmsd: PLIC_VMSD as VMStateDescription<never>, template: () => new Plic(() => {}).saveState() as unknown as Bag },
  { name: "uart", vmsd: UART16550_VMSD as VMStateDescription<never>, template: () => new Uart16550({ set: () => {} }, () => {}, now).saveState() as unknown as Bag, fixup: (s) => ((s.fcr as number) &= 0xc9) },
  { name: "rtc", vmsd: GOLDFISH_RTC_VMSD as VMStateDescription<never>, template: () => new GoldfishRtc({ set: () => {} }).saveState() as unknown as Bag },
  { name: "virtio-mmio + virtio-blk", vmsd: virtioMmioVmsd(1, VIRTIO_BLK_VMSD as VMStateDescription<never>) as VMStateDescription<never>, template: () => transportTemplate() as unknown as Bag },
  { name: "virtio-mmio, empty slot", vmsd: virtioMmioVmsd(0, null) as VMStateDescription<never>, template: () => ({ ...transportTemplate(), queues: [], backend: null }) as unknown as Bag },
];

describe("VMState descriptions", () => {
  for (const c of CASES) {
    describe(c.name, () => {
      const states = Array.from({ length: 40 }, (_, i) => {
        const s = randomState(c.vmsd, c.template(), rng(0x9e3779b9 + i * 7919));
        c.fixup?.(s);
        return s;
      });

      it("round-trips random states byte for byte", () => {
        for (const s of states) {
          const bytes = saveStateBytes(c.vmsd, s as never);
          const back = loadStateBytes(c.vmsd, c.vmsd.version_id, bytes, c.template() as never) as Bag;
          expect(back).toEqual(s);
          expect(saveStateBytes(c.vmsd, back as never)).toEqual(bytes);
        }
      });

      it("refuses every truncation and any trailing byte, naming the description", () => {
        const bytes = saveStateBytes(c.vmsd, states[1] as never);
        for (let n = 0; n < bytes.length; n++) {
          const cut = bytes.subarray(0, n);
          let back: Bag;
          try {
            back = loadStateBytes(c.vmsd, c.vmsd.version_id, cut, c.template() as never) as Bag;
          } catch (e) {
            expect(e).toBeInstanceOf(VMStateError);
            expect((e as Error).message).toMatch(/truncated|unexpected bytes/);
            continue;
          }
          // Cut exactly before an optional subsection: a complete, shorter section.
          expect(saveStateBytes(c.vmsd, back as never)).toEqual(cut);
          expect(bytes[n]).toBe(0x05);
        }
        const longer = new Uint8Array(bytes.length + 1);
        longer.set(bytes);
        expect(() => loadStateBytes(c.vmsd, c.vmsd.version_id, longer, c.template() as never)).toThrow(/unexpected bytes after the section/);
      });

      it("refuses flipped bits or decodes them to a valid state with only the described keys", () => {
        const r = rng(12345);
        const template = c.template();
        const keys = Object.keys(template).sort();
        for (const s of states.slice(0, 10)) {
          const bytes = saveStateBytes(c.vmsd, s as never);
          for (let k = 0; k < 60; k++) {
            const bad = Uint8Array.from(bytes);
            bad[r() % bad.length] ^= 1 << (r() % 8);
            let back: Bag;
            try {
              back = loadStateBytes(c.vmsd, c.vmsd.version_id, bad, template as never) as Bag;
            } catch (e) {
              expect(e).toBeInstanceOf(VMStateError);
              expect((e as Error).message.startsWith(`${c.vmsd.name}`)).toBe(true);
              continue;
            }
            expect(Object.keys(back).sort()).toEqual(keys);
            // Valid: it saves again, and what it saves loads to the same state. (Not always the
            // same bytes: a subsection sent although not needed is not sent again.)
            const again = saveStateBytes(c.vmsd, back as never);
            expect(loadStateBytes(c.vmsd, c.vmsd.version_id, again, template as never)).toEqual(back);
          }
        }
        // The template itself was never touched.
        expect(template).toEqual(c.template());
      });

      it("refuses versions outside its range in QEMU's words", () => {
        const bytes = saveStateBytes(c.vmsd, states[0] as never);
        expect(() => loadStateBytes(c.vmsd, c.vmsd.version_id + 1, bytes, c.template() as never)).toThrow(
          `${c.vmsd.name}: incoming version_id ${c.vmsd.version_id + 1} is too new for local version_id ${c.vmsd.version_id}`,
        );
        expect(() => loadStateBytes(c.vmsd, c.vmsd.minimum_version_id - 1, bytes, c.template() as never)).toThrow(/is too old for local minimum version_id/);
      });
    });
  }
});

describe("VMState interpreter", () => {
  it("names the field and element of a value out of range", () => {
    const plic = new Plic(() => {});
    const bytes = saveStateBytes(PLIC_VMSD, plic.saveState());
    new DataView(bytes.buffer).setUint32(3 * 4, 8);
    expect(() => loadStateBytes(PLIC_VMSD, 1, bytes, plic.saveState())).toThrow("riscv_sifive_plic: source_priority[3]: value 0x8 out of range 0x0..0x7");
    expect(() => loadStateBytes(PLIC_VMSD, 1, bytes.subarray(0, 10), plic.saveState())).toThrow(/^riscv_sifive_plic: source_priority\[2\]: truncated/);
  });

  it("writes 64-bit values exactly over the whole range", () => {
    const clint = new Clint({ setMsip: () => {}, setMtip: () => {} }, now);
    clint.write(0x4000, 4, 0xffffffff);
    clint.write(0x4004, 4, 0xffffffff);
    const bytes = saveStateBytes(CLINT_VMSD, clint.saveState());
    expect([...bytes.subarray(8, 16)]).toEqual(Array(8).fill(0xff));
    expect(loadStateBytes(CLINT_VMSD, 1, bytes, clint.saveState()).mtimecmp).toBe(2n ** 64n - 1n);
  });

  it("writes a needed subsection as QEMU_VM_SUBSECTION, name, be32 version, body; and reads it back", () => {
    const clint = new Clint({ setMsip: () => {}, setMtip: () => {} }, now);
    expect(saveStateBytes(CLINT_VMSD, clint.saveState()).length).toBe(16);
    clint.write(0, 4, 1);
    const bytes = saveStateBytes(CLINT_VMSD, clint.saveState());
    const name = "riscv_mtimer/msip";
    expect(bytes[16]).toBe(0x05);
    expect(bytes[17]).toBe(name.length);
    expect(Buffer.from(bytes.subarray(18, 18 + name.length)).toString("latin1")).toBe(name);
    expect(new DataView(bytes.buffer).getUint32(18 + name.length)).toBe(1);
    expect(new DataView(bytes.buffer).getUint32(22 + name.length)).toBe(1);
    expect(loadStateBytes(CLINT_VMSD, 1, bytes, { msip: 0, mtimecmp: 0n, mtime: 0n }).msip).toBe(1);
    // Absent, the subsection's field takes the pre_load default, not the destination's value.
    expect(loadStateBytes(CLINT_VMSD, 1, bytes.subarray(0, 16), { msip: 1, mtimecmp: 0n, mtime: 0n }).msip).toBe(0);
  });

  it("refuses an unknown subsection under its own name; stops at one that cannot be its own", () => {
    const w = new ByteWriter();
    w.bytes(new Uint8Array(16));
    const name = new TextEncoder().encode("riscv_mtimer/bogus");
    w.u8(0x05);
    w.u8(name.length);
    w.bytes(name);
    w.be32(1);
    expect(() => loadStateBytes(CLINT_VMSD, 1, w.finish(), { msip: 0, mtimecmp: 0n, mtime: 0n })).toThrow("riscv_mtimer: unknown subsection 'riscv_mtimer/bogus'");
    const other = new ByteWriter();
    other.bytes(new Uint8Array(16));
    const foreign = new TextEncoder().encode("serial/fifo_timeout_timer");
    other.u8(0x05);
    other.u8(foreign.length);
    other.bytes(foreign);
    const r = new ByteReader(other.finish());
    loadState(CLINT_VMSD, 1, r, { msip: 0, mtimecmp: 0n, mtime: 0n });
    expect(r.offset).toBe(16);
  });

  it("skips fields newer than the incoming version, keeping the current value", () => {
    interface S {
      a: number;
      b: number;
    }
    const v2: VMStateDescription<S> = { name: "t", version_id: 2, minimum_version_id: 1, fields: [{ name: "a", type: "uint8" }, { name: "b", type: "uint16", version_id: 2 }] };
    expect(loadStateBytes(v2, 1, Uint8Array.of(7), { a: 0, b: 99 })).toEqual({ a: 7, b: 99 });
    expect(loadStateBytes(v2, 2, Uint8Array.of(7, 0, 5), { a: 0, b: 99 })).toEqual({ a: 7, b: 5 });
  });

  it("fills a vmdesc entry with QEMU's keys, compressing fixed-shape arrays", () => {
    interface Q {
      n: number;
      on: boolean;
    }
    interface S {
      cnt: number;
      regs: number[];
      q: Q[];
      buf_len: number;
      buf: Uint8Array;
      t: bigint;
    }
    const qd: VMStateDescription<Q> = { name: "t/q", version_id: 1, minimum_version_id: 1, fields: [{ name: "n", type: "uint16" }, { name: "on", type: "bool" }] };
    const d: VMStateDescription<S> = {
      name: "t",
      version_id: 3,
      minimum_version_id: 1,
      fields: [
        { name: "cnt", type: "uint8" },
        { name: "regs", type: "uint32", array: 2 },
        { name: "q", type: "struct", vmsd: qd as VMStateDescription<never>, array: 2 },
        { name: "buf_len", type: "uint32" },
        { name: "buf", type: "vbuffer", lengthField: "buf_len", max: 8 },
      ],
      subsections: [{ name: "t/timer", version_id: 1, minimum_version_id: 1, needed: (s) => s.t !== -1n, fields: [{ name: "t", type: "timer" }] }],
    };
    const desc = {} as VmdescSection;
    saveStateBytes(d, { cnt: 1, regs: [1, 2], q: [{ n: 1, on: true }, { n: 2, on: false }], buf_len: 3, buf: Uint8Array.of(1, 2, 3), t: 5n }, desc);
    expect(JSON.parse(JSON.stringify(desc))).toEqual({
      vmsd_name: "t",
      version: 3,
      fields: [
        { name: "cnt", type: "uint8", size: 1 },
        { name: "regs", array_len: 2, type: "uint32", size: 4 },
        { name: "q", array_len: 2, type: "struct", struct: { vmsd_name: "t/q", version: 1, fields: [{ name: "n", type: "uint16", size: 2 }, { name: "on", type: "bool", size: 1 }] }, size: 3 },
        { name: "buf_len", type: "uint32", size: 4 },
        { name: "buf", type: "buffer", size: 3 },
      ],
      subsections: [{ vmsd_name: "t/timer", version: 1, fields: [{ name: "t", type: "timer", size: 8 }] }],
    });
    expect(Object.keys(desc.fields[1])).toEqual(["name", "array_len", "type", "size"]);
  });

  it("dumps descriptions in the shape of QEMU's -dump-vmstate", () => {
    const dump = dumpVmstate("virt", [{ typeName: "riscv.aclint.mtimer", vmsd: CLINT_VMSD as VMStateDescription<never> }]);
    expect(dump).toEqual({
      vmschkmachine: { Name: "virt" },
      "riscv.aclint.mtimer": {
        Name: "riscv.aclint.mtimer",
        version_id: 1,
        minimum_version_id: 1,
        Description: {
          name: "riscv_mtimer",
          version_id: 1,
          minimum_version_id: 1,
          Fields: [
            { field: "mtime", version_id: 0, field_exists: false, size: 8 },
            { field: "mtimecmp", version_id: 0, field_exists: false, size: 8 },
          ],
          Subsections: [{ name: "riscv_mtimer/msip", version_id: 1, minimum_version_id: 1, Fields: [{ field: "msip", version_id: 0, field_exists: false, size: 4 }] }],
        },
      },
    });
  });
});
