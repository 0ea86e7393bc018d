// VMState descriptions and their interpreter: minivm's counterpart of QEMU's
// VMStateDescription (include/migration/vmstate.h) and migration/vmstate.c. A device declares
// its migratable state as a versioned list of typed fields plus optional subsections; one
// interpreter writes it in QEMU's section-body encoding (big-endian fields in order, arrays
// element by element, then QEMU_VM_SUBSECTION records) and reads it back into a *new* state
// object, checking versions, lengths and value ranges, and naming the field that failed.
//
// Value representation in state objects: uint8/16/32 and int32 are numbers, uint64/int64 and
// timers are bigints (exact over the whole 64-bit range), bools are booleans, buffers are
// Uint8Arrays, structs are plain objects. Arrays are plain arrays or typed arrays.

import { ByteReader, ByteWriter, TruncatedInput } from "./bytes.js";
import type { VmdescFields, VmdescSection } from "./vmstate-json.js";

/** QEMU_VM_SUBSECTION (migration/savevm.c). */
export const QEMU_VM_SUBSECTION = 0x05;

export type ScalarType = "uint8" | "uint16" | "uint32" | "uint64" | "int32" | "int64" | "bool" | "timer";

interface FieldBase<S> {
  readonly name: Extract<keyof S, string>;
  /** Present from this version of the description on (QEMU's `_v` fields); default 0. */
  readonly version_id?: number;
}

/** A scalar or a fixed-length array of scalars. */
export interface ScalarField<S> extends FieldBase<S> {
  readonly type: ScalarType;
  /** Element count of a fixed array (QEMU's VMSTATE_*_ARRAY); absent for a single value. */
  readonly array?: number;
  /** Inclusive bounds a loaded value must respect (numbers, or bigints for 64-bit types). */
  readonly range?: readonly [number | bigint, number | bigint];
  /** The only values a loaded value may take (an enum). */
  readonly oneOf?: readonly number[];
}

/** A fixed-size byte buffer (VMSTATE_BUFFER). */
export interface BufferField<S> extends FieldBase<S> {
  readonly type: "buffer";
  readonly size: number;
}

/** A byte buffer whose length is an earlier integer field (VMSTATE_VBUFFER_UINT32). */
export interface VBufferField<S> extends FieldBase<S> {
  readonly type: "vbuffer";
  readonly lengthField: Extract<keyof S, string>;
  /** Largest length accepted on load. */
  readonly max: number;
}

/** A nested description, once or as a fixed array (VMSTATE_STRUCT / VMSTATE_STRUCT_ARRAY). */
export interface StructField<S> extends FieldBase<S> {
  readonly type: "struct";
  readonly vmsd: VMStateDescription<never>;
  readonly array?: number;
}

export type VMStateField<S> = ScalarField<S> | BufferField<S> | VBufferField<S> | StructField<S>;

export interface VMStateDescription<S extends object> {
  /** QEMU's vmsd name; a subsection's name is "<parent>/<something>". */
  readonly name: string;
  readonly version_id: number;
  readonly minimum_version_id: number;
  readonly fields: readonly VMStateField<S>[];
  /** Walk the same state object as their parent, as in QEMU. */
  readonly subsections?: readonly VMStateDescription<S>[];
  /** A subsection is written only when this says so (QEMU's .needed). */
  needed?(s: S): boolean;
  /**
   * Runs on the new state before fields are read: the place to set defaults for
   * subsections the source may not send (QEMU devices do this in pre_load).
   */
  pre_load?(s: S): void;
  /** Runs on the state before it is written. */
  pre_save?(s: S): void;
  /** Runs on the freshly decoded state; a string refuses the load with that reason. */
  post_load?(s: S, versionId: number): string | null;
}

/** A load or save failure, naming the description and the field path. */
export class VMStateError extends Error {
  constructor(
    readonly vmsdName: string,
    readonly fieldPath: string,
    readonly reason: string,
  ) {
    super(fieldPath ? `${vmsdName}: ${fieldPath}: ${reason}` : `${vmsdName}: ${reason}`);
  }
}

type Bag = Record<string, unknown>;

const SCALAR_SIZE: Record<ScalarType, number> = { uint8: 1, uint16: 2, uint32: 4, uint64: 8, int32: 4, int64: 8, bool: 1, timer: 8 };
const NUMBER_BOUNDS: Partial<Record<ScalarType, readonly [number, number]>> = {
  uint8: [0, 0xff],
  uint16: [0, 0xffff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};
const BIG_BOUNDS: Partial<Record<ScalarType, readonly [bigint, bigint]>> = {
  uint64: [0n, 0xffffffffffffffffn],
  int64: [-0x8000000000000000n, 0x7fffffffffffffffn],
  // QEMU's timer encoding: expiry in ns, -1 when the timer is not armed.
  timer: [-1n, 0x7fffffffffffffffn],
};

/** Bytes one element of a field occupies in the encoding (0 for a variable buffer). */
export function elementSize(f: VMStateField<never>): number {
  switch (f.type) {
    case "buffer":
      return f.size;
    case "vbuffer":
      return 0;
    case "struct":
      return f.vmsd.fields.reduce((n, g) => n + elementSize(g) * (("array" in g && g.array) || 1), 0);
    default:
      return SCALAR_SIZE[f.type];
  }
}

function hex(v: number | bigint): string {
  return typeof v === "bigint" ? (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`) : v < 0 ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

/** Why `v` is not an acceptable value of field `f`, or null. */
function checkScalar(f: ScalarField<never>, v: unknown): string | null {
  if (f.type === "bool") return typeof v === "boolean" ? null : `${String(v)} is not a bool`;
  const nb = NUMBER_BOUNDS[f.type];
  if (nb) {
    if (typeof v !== "number" || !Number.isInteger(v)) return `${String(v)} is not an integer`;
    if (v < nb[0] || v > nb[1]) return `value ${hex(v)} does not fit ${f.type}`;
  } else {
    const bb = BIG_BOUNDS[f.type]!;
    if (typeof v !== "bigint") return `${String(v)} is not a bigint`;
    if (v < bb[0] || v > bb[1]) return `value ${hex(v)} does not fit ${f.type}`;
  }
  if (f.range && (v < f.range[0] || v > f.range[1])) return `value ${hex(v)} out of range ${hex(f.range[0])}..${hex(f.range[1])}`;
  if (f.oneOf && !f.oneOf.includes(Number(v))) return `value ${hex(v)} is not one of ${f.oneOf.join(", ")}`;
  return null;
}

function fieldExists(f: VMStateField<never>, versionId: number): boolean {
  return (f.version_id ?? 0) <= versionId;
}

// ---------------------------------------------------------------------------------------
// Save

/**
 * Write `state` as QEMU's section body for `vmsd` (vmstate_save_state_v). When `vmdesc` is
 * given it is filled with the matching JSON description (vmsd_name, version, fields,
 * subsections), as QEMU writes beside each section.
 */
export function saveState<S extends object>(vmsd: VMStateDescription<S>, state: S, w: ByteWriter, vmdesc?: VmdescSection): void {
  saveInto(vmsd as VMStateDescription<never>, state as unknown as Bag, w, vmdesc ?? null, "");
}

/** Convenience: the section body as bytes. */
export function saveStateBytes<S extends object>(vmsd: VMStateDescription<S>, state: S, vmdesc?: VmdescSection): Uint8Array {
  const w = new ByteWriter();
  saveState(vmsd, state, w, vmdesc);
  return w.finish();
}

function saveInto(vmsd: VMStateDescription<never>, s: Bag, w: ByteWriter, desc: VmdescSection | null, prefix: string): void {
  (vmsd as VMStateDescription<Bag>).pre_save?.(s);
  const fields: VmdescFields = [];
  if (desc) {
    desc.vmsd_name = vmsd.name;
    desc.version = vmsd.version_id;
    desc.fields = fields;
  }
  for (const f of vmsd.fields) {
    if (!fieldExists(f, vmsd.version_id)) continue;
    const path = prefix + f.name;
    const v = s[f.name];
    const n = f.type === "buffer" || f.type === "vbuffer" ? 1 : (f.array ?? 1);
    const isArray = f.type !== "buffer" && f.type !== "vbuffer" && f.array !== undefined;
    const elems: unknown[] = [];
    if (isArray) {
      if (!isArrayLike(v) || v.length !== n) throw new VMStateError(vmsd.name, path, `save: expected an array of ${n}, got ${describe(v)}`);
      for (let i = 0; i < n; i++) elems.push(v[i]);
    } else {
      elems.push(v);
    }
    // vmsd_can_compress: an array whose elements have a fixed shape is described once.
    const compress = canCompress(f);
    for (let i = 0; i < elems.length; i++) {
      const at = w.length;
      const epath = isArray ? `${path}[${i}]` : path;
      let structDesc: VmdescSection | undefined;
      if (f.type === "struct") {
        if (typeof elems[i] !== "object" || elems[i] === null) throw new VMStateError(vmsd.name, epath, `save: ${describe(elems[i])} is not a struct`);
        structDesc = desc ? ({} as VmdescSection) : undefined;
        saveInto(f.vmsd, elems[i] as Bag, w, structDesc ?? null, `${epath}.`);
      } else if (f.type === "buffer") {
        if (!(v instanceof Uint8Array) || v.length !== f.size) throw new VMStateError(vmsd.name, epath, `save: expected ${f.size} bytes, got ${describe(v)}`);
        w.bytes(v);
      } else if (f.type === "vbuffer") {
        const len = s[f.lengthField];
        if (!(v instanceof Uint8Array) || v.length !== len) throw new VMStateError(vmsd.name, epath, `save: buffer of ${describe(v)} but ${f.lengthField} is ${String(len)}`);
        w.bytes(v);
      } else {
        const why = checkScalar(f, elems[i]);
        if (why) throw new VMStateError(vmsd.name, epath, `save: ${why}`);
        putScalar(w, f.type, elems[i] as number | bigint | boolean);
      }
      if (desc && (!compress || i === 0)) {
        const entry: VmdescFields[number] = { name: f.name };
        if (elems.length > 1) {
          if (compress) entry.array_len = elems.length;
          else entry.index = i;
        }
        entry.type = f.type === "vbuffer" ? "buffer" : f.type;
        if (structDesc) entry.struct = structDesc;
        entry.size = w.length - at;
        fields.push(entry);
      }
    }
  }
  let subs: VmdescSection[] | null = null;
  for (const sub of vmsd.subsections ?? []) {
    const sv = sub as VMStateDescription<Bag>;
    if (sv.needed && !sv.needed(s)) continue;
    const name = new TextEncoder().encode(sub.name);
    w.u8(QEMU_VM_SUBSECTION);
    w.u8(name.length);
    w.bytes(name);
    w.be32(sub.version_id);
    let subDesc: VmdescSection | null = null;
    if (desc) {
      subDesc = {} as VmdescSection;
      (subs ??= []).push(subDesc);
    }
    saveInto(sub, s, w, subDesc, prefix);
  }
  if (desc && subs) desc.subsections = subs;
}

function canCompress(f: VMStateField<never>): boolean {
  if (f.type !== "struct") return true;
  if (f.vmsd.subsections && f.vmsd.subsections.length > 0) return false;
  return f.vmsd.fields.every(canCompress);
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function describe(v: unknown): string {
  if (isArrayLike(v)) return `${v.length} elements`;
  if (typeof v === "bigint") return `${v}n`;
  return typeof v === "object" ? (v === null ? "null" : "an object") : `${typeof v} ${String(v)}`;
}

function putScalar(w: ByteWriter, t: ScalarType, v: number | bigint | boolean): void {
  switch (t) {
    case "bool":
      w.u8(v ? 1 : 0);
      return;
    case "uint8":
      w.u8(v as number);
      return;
    case "uint16":
      w.be16(v as number);
      return;
    case "uint32":
    case "int32":
      w.be32(v as number);
      return;
    default:
      w.be64(v as bigint);
  }
}

// ---------------------------------------------------------------------------------------
// Load

export interface LoadOptions {
  /** Refuse bytes left over after the section body (the caller knows the body's extent). */
  exact?: boolean;
}

/**
 * Decode a section body written at `versionId` into a new state object (vmstate_load_state).
 * The result starts as a deep copy of `current` and only the described fields are replaced,
 * so fields newer than `versionId` or in absent subsections keep the current values, and no
 * input can add or change anything else. `current` itself is never modified.
 */
export function loadState<S extends object>(vmsd: VMStateDescription<S>, versionId: number, r: ByteReader, current: S, opts: LoadOptions = {}): S {
  const out = structuredClone(current) as unknown as Bag;
  try {
      loadInto(vmsd as VMStateDescription<never>, versionId, r, out, "", vmsd.name);
  } catch (e) {
    if (e instanceof TruncatedInput) throw new VMStateError(vmsd.name, "", `truncated: ${e.message}`);
    throw e;
  }
  if (opts.exact && r.remaining > 0) throw new VMStateError(vmsd.name, "", `${r.remaining} unexpected bytes after the section at offset ${r.offset}`);
  return out as unknown as S;
}

/** Convenience: decode a whole byte array, refusing trailing bytes. */
export function loadStateBytes<S extends object>(vmsd: VMStateDescription<S>, versionId: number, bytes: Uint8Array, current: S): S {
  return loadState(vmsd, versionId, new ByteReader(bytes), current, { exact: true });
}

/** `report` is the name errors carry: the section's, or a subsection's own "<parent>/<sub>". */
function loadInto(vmsd: VMStateDescription<never>, versionId: number, r: ByteReader, s: Bag, prefix: string, report: string): void {
  // QEMU's words (vmstate_load_state).
  if (versionId > vmsd.version_id) throw new VMStateError(vmsd.name, "", `incoming version_id ${versionId} is too new for local version_id ${vmsd.version_id}`);
  if (versionId < vmsd.minimum_version_id) throw new VMStateError(vmsd.name, "", `incoming version_id ${versionId} is too old for local minimum version_id ${vmsd.minimum_version_id}`);
  (vmsd as VMStateDescription<Bag>).pre_load?.(s);
  for (const f of vmsd.fields) {
    if (!fieldExists(f, versionId)) continue;
    const path = prefix + f.name;
    try {
      s[f.name] = loadField(f, r, s, path, report);
    } catch (e) {
      if (e instanceof TruncatedInput) throw new VMStateError(report, path, `truncated: ${e.message}`);
      if (e instanceof FieldProblem) throw new VMStateError(report, e.path, e.message);
      throw e;
    }
  }
  loadSubsections(vmsd, r, s, prefix);
  const why = (vmsd as VMStateDescription<Bag>).post_load?.(s, versionId) ?? null;
  if (why !== null) throw new VMStateError(report, prefix.replace(/\.$/, ""), why);
}

/** A bad value inside one field; loadInto turns it into a VMStateError. */
class FieldProblem extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(reason);
  }
}

function loadField(f: VMStateField<never>, r: ByteReader, s: Bag, path: string, report: string): unknown {
  const cur = s[f.name];
  if (f.type === "buffer") return r.bytes(f.size);
  if (f.type === "vbuffer") {
    const len = s[f.lengthField];
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0 || len > f.max) {
      throw new FieldProblem(path, `length ${String(len)} (from ${f.lengthField}) out of range 0..${f.max}`);
    }
    return r.bytes(len);
  }
  if (f.type === "struct") {
    const one = (old: unknown, p: string): Bag => {
      const fresh = (typeof old === "object" && old !== null ? old : {}) as Bag;
      // Nested structs load at their own current version (QEMU's VMS_STRUCT).
      loadInto(f.vmsd, f.vmsd.version_id, r, fresh, `${p}.`, report);
      return fresh;
    };
    if (f.array === undefined) return one(cur, path);
    const olds = isArrayLike(cur) ? cur : [];
    const arr: Bag[] = [];
    for (let i = 0; i < f.array; i++) arr.push(one(olds[i], `${path}[${i}]`));
    return arr;
  }
  const get = (p: string): number | bigint | boolean => {
    let v: number | bigint | boolean;
    try {
      v = getScalar(r, f.type);
    } catch (e) {
      if (e instanceof TruncatedInput) throw new FieldProblem(p, `truncated: ${e.message}`);
      throw e;
    }
    const why = checkScalar(f, v);
    if (why) throw new FieldProblem(p, why);
    return v;
  };
  if (f.array === undefined) return get(path);
  const vals: (number | bigint | boolean)[] = [];
  for (let i = 0; i < f.array; i++) vals.push(get(`${path}[${i}]`));
  return sameKindOfArray(cur, vals);
}

/** A typed array field stays a typed array of the same kind; anything else becomes an array. */
function sameKindOfArray(cur: unknown, vals: (number | bigint | boolean)[]): unknown {
  if (cur instanceof Uint32Array) return Uint32Array.from(vals as number[]);
  if (cur instanceof Int32Array) return Int32Array.from(vals as number[]);
  if (cur instanceof Uint16Array) return Uint16Array.from(vals as number[]);
  if (cur instanceof Uint8Array) return Uint8Array.from(vals as number[]);
  return vals;
}

function getScalar(r: ByteReader, t: ScalarType): number | bigint | boolean {
  switch (t) {
    case "bool": {
      // QEMU's get_bool takes any non-zero byte; minivm only ever writes 0 or 1, so anything
      // else is corruption, and refusing it keeps save(load(x)) == x.
      const b = r.u8();
      if (b > 1) return b;
      return b === 1;
    }
    case "uint8":
      return r.u8();
    case "uint16":
      return r.be16();
    case "uint32":
      return r.be32();
    case "int32":
      return r.be32() | 0;
    case "uint64":
      return r.be64();
    default:
      return BigInt.asIntN(64, r.be64());
  }
}

/** vmstate_subsection_load: subsection records follow the fields, each named "<parent>/...". */
function loadSubsections(vmsd: VMStateDescription<never>, r: ByteReader, s: Bag, prefix: string): void {
  const seen = new Set<string>();
  while (r.peek() === QEMU_VM_SUBSECTION) {
    const len = r.peek(1);
    // As QEMU: a record whose name cannot be ours ends the subsections (the caller then finds
    // the bytes unexpected); one with our prefix that we do not know is refused.
    if (len < vmsd.name.length + 1 || r.remaining < 2 + len) return;
    const nameBytes = new Uint8Array(len);
    for (let i = 0; i < len; i++) nameBytes[i] = r.peek(2 + i);
    const name = new TextDecoder("latin1").decode(nameBytes);
    if (!name.startsWith(vmsd.name)) return;
    const sub = (vmsd.subsections ?? []).find((d) => d.name === name);
    if (!sub) throw new VMStateError(vmsd.name, "", `unknown subsection '${name}'`);
    if (seen.has(name)) throw new VMStateError(vmsd.name, "", `subsection '${name}' appears twice`);
    seen.add(name);
    r.u8();
    r.u8();
    r.bytes(len);
    let version: number;
    try {
      version = r.be32();
    } catch (e) {
      if (e instanceof TruncatedInput) throw new VMStateError(name, "", `truncated: ${e.message}`);
      throw e;
    }
    loadInto(sub, version, r, s, prefix, name);
  }
}
