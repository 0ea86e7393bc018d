// The input visitor the generated validators drive: QEMU's
// qapi/qobject-input-visitor.c and qapi/qapi-visit-core.c semantics over
// parsed JSON. Members are looked up by name and consumed; a struct's
// leftover keys are reported by checkStruct() after all known members were
// visited; error texts are QEMU's, including its quirks: type errors name the
// full path ('a.b', 'list[0]'), while enum and integer-range errors name only
// the innermost member, and 'null' for list elements.

import { genericError, QmpError } from "./error.js";
import { qdictKeyOrder } from "./qdict-order.js";
import { GHashTableModel } from "./ghash.js";

type DictFrame = {
  readonly kind: "dict";
  readonly name: string | null;
  readonly obj: Readonly<Record<string, unknown>>;
  /** Keys not visited yet, in input order. */
  readonly unvisited: Set<string>;
  /** Keys visited, in visit order. */
  readonly consumed: string[];
};
type ListFrame = {
  readonly kind: "list";
  readonly name: string | null;
  readonly items: readonly unknown[];
  next: number;
  /** Index of the element last consumed; -1 before the first. */
  index: number;
};
type Frame = DictFrame | ListFrame;

/** How an alternate's branch is chosen: the JSON type of the value. */
export type QType = "qnull" | "qnum" | "qstring" | "qdict" | "qlist" | "qbool";

const TWO_53 = 2 ** 53;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** QEMU's qnum_get_try_int(): an integer that fits int64. */
function asInt64(v: unknown): number | bigint | null {
  if (typeof v === "number") return Number.isInteger(v) && Math.abs(v) <= TWO_53 ? v : null;
  if (typeof v === "bigint") return v >= INT64_MIN && v <= INT64_MAX ? v : null;
  return null;
}

function narrow(v: bigint): number | bigint {
  return v >= -BigInt(TWO_53) && v <= BigInt(TWO_53) ? Number(v) : v;
}

/**
 * The leftover key QEMU reports: it keeps a struct's keys in a GHashTable,
 * filled in QDict order and emptied as members are visited, and names the
 * first key that table iterates to.
 */
function firstLeftover(tos: DictFrame): string {
  const table = new GHashTableModel();
  for (const k of qdictKeyOrder([...tos.consumed, ...tos.unvisited].sort(byInputOrder(tos.obj)))) table.insert(k);
  for (const k of tos.consumed) table.remove(k);
  return table.keysInOrder()[0] ?? [...tos.unvisited][0]!;
}

function byInputOrder(obj: Readonly<Record<string, unknown>>): (a: string, b: string) => number {
  const order = Object.keys(obj);
  return (a, b) => order.indexOf(a) - order.indexOf(b);
}

export class InputVisitor {
  private readonly stack: Frame[] = [];

  constructor(private readonly root: unknown) {}

  /** The full name of member NAME of the container N levels below the top. */
  private fullName(name: string | null, n = 0): string {
    let s = "";
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const so = this.stack[i]!;
      if (n > 0) n--;
      else if (so.kind === "dict") s = "." + (name ?? "<anonymous>") + s;
      else s = `[${so.index}]` + s;
      name = so.name;
    }
    if (name !== null) return name + s;
    if (s.startsWith(".")) return s.slice(1);
    return s === "" ? "<anonymous>" : s;
  }

  private tryGet(name: string | null, consume: boolean): { present: boolean; value: unknown } {
    const tos = this.stack[this.stack.length - 1];
    if (!tos) return { present: true, value: this.root };
    if (tos.kind === "dict") {
      const key = name ?? "";
      const value = Object.prototype.hasOwnProperty.call(tos.obj, key) ? tos.obj[key] : undefined;
      if (value === undefined) return { present: false, value };
      if (consume && tos.unvisited.delete(key)) tos.consumed.push(key);
      return { present: true, value };
    }
    const present = tos.next < tos.items.length;
    const value = present ? tos.items[tos.next] : undefined;
    if (consume) {
      if (present) tos.next++;
      tos.index++;
    }
    return { present, value };
  }

  private get(name: string | null): unknown {
    const r = this.tryGet(name, true);
    if (!r.present) throw genericError(`Parameter '${this.fullName(name)}' is missing`);
    return r.value;
  }

  private typeError(name: string | null, expected: string): QmpError {
    return genericError(`Invalid parameter type for '${this.fullName(name)}', expected: ${expected}`);
  }

  /** Whether optional member NAME is present (it is not consumed). */
  optional(name: string): boolean {
    return this.tryGet(name, false).present;
  }

  startStruct(name: string | null): void {
    const v = this.get(name);
    if (!isPlainObject(v)) throw this.typeError(name, "object");
    const unvisited = new Set(Object.keys(v).filter((k) => v[k] !== undefined));
    this.stack.push({ kind: "dict", name, obj: v, unvisited, consumed: [] });
  }

  /** Rejects members no visit consumed (QEMU's check_struct). */
  checkStruct(): void {
    const tos = this.stack[this.stack.length - 1];
    if (tos?.kind !== "dict") throw new Error("checkStruct outside a struct");
    if (tos.unvisited.size === 0) return;
    throw genericError(`Parameter '${this.fullName(firstLeftover(tos))}' is unexpected`);
  }

  endStruct(): void {
    this.stack.pop();
  }

  startList(name: string | null): void {
    const v = this.get(name);
    if (!Array.isArray(v)) throw this.typeError(name, "array");
    this.stack.push({ kind: "list", name, items: v, next: 0, index: -1 });
  }

  /** True while the list being visited has unvisited elements. */
  moreList(): boolean {
    const tos = this.stack[this.stack.length - 1];
    if (tos?.kind !== "list") throw new Error("moreList outside a list");
    return tos.next < tos.items.length;
  }

  endList(): void {
    this.stack.pop();
  }

  /** Visits a whole list; each element is visited without a name, as in QEMU. */
  list<T>(name: string | null, element: (name: null) => T): T[] {
    this.startList(name);
    const out: T[] = [];
    while (this.moreList()) out.push(element(null));
    this.endList();
    return out;
  }

  int64(name: string | null): number | bigint {
    const v = asInt64(this.get(name));
    if (v === null) throw this.typeError(name, "integer");
    return typeof v === "bigint" ? narrow(v) : v;
  }

  uint64(name: string | null): number | bigint {
    const raw = this.get(name);
    let v: bigint | null = null;
    if (typeof raw === "bigint" && raw >= 0n && raw <= UINT64_MAX) v = raw;
    else {
      // Negative values are accepted and wrap around, for backward compatibility.
      const i = asInt64(raw);
      if (i !== null) v = BigInt.asUintN(64, BigInt(i));
    }
    if (v === null) throw genericError(`Parameter '${this.fullName(name)}' expects uint64`);
    return narrow(v);
  }

  /** int8..int32: int64, then a range check naming the C type. */
  intN(name: string | null, bits: 8 | 16 | 32): number {
    const v = Number(this.int64(name));
    const max = 2 ** (bits - 1);
    if (v < -max || v >= max) throw genericError(`Parameter '${name ?? "null"}' expects int${bits}_t`);
    return v;
  }

  /** uint8..uint32: uint64 (negatives wrap), then a range check. */
  uintN(name: string | null, bits: 8 | 16 | 32): number {
    const v = this.uint64(name);
    if (typeof v === "bigint" || v >= 2 ** bits) throw genericError(`Parameter '${name ?? "null"}' expects uint${bits}_t`);
    return v;
  }

  number(name: string | null): number {
    const v = this.get(name);
    if (typeof v === "number") return v;
    if (typeof v === "bigint") return Number(v);
    throw this.typeError(name, "number");
  }

  bool(name: string | null): boolean {
    const v = this.get(name);
    if (typeof v !== "boolean") throw this.typeError(name, "boolean");
    return v;
  }

  str(name: string | null): string {
    const v = this.get(name);
    if (typeof v !== "string") throw this.typeError(name, "string");
    return v;
  }

  any(name: string | null): unknown {
    return this.get(name);
  }

  null(name: string | null): null {
    const v = this.get(name);
    if (v !== null) throw this.typeError(name, "null");
    return null;
  }

  enum<T extends string>(name: string | null, values: readonly T[]): T {
    const s = this.str(name);
    if (!(values as readonly string[]).includes(s)) {
      throw genericError(`Parameter '${name ?? "null"}' does not accept value '${s}'`);
    }
    return s as T;
  }

  /** The JSON type of an alternate's value, which is not consumed yet. */
  alternateType(name: string | null): QType {
    const r = this.tryGet(name, false);
    if (!r.present) throw genericError(`Parameter '${this.fullName(name)}' is missing`);
    const v = r.value;
    if (v === null) return "qnull";
    if (typeof v === "number" || typeof v === "bigint") return "qnum";
    if (typeof v === "string") return "qstring";
    if (typeof v === "boolean") return "qbool";
    if (Array.isArray(v)) return "qlist";
    return "qdict";
  }

  /** No branch of alternate TYPENAME takes the value's JSON type. */
  alternateError(name: string | null, typeName: string): QmpError {
    return genericError(`Invalid parameter type for '${name ?? "null"}', expected: ${typeName}`);
  }
}

/**
 * Checks a command's or event's arguments: an object whose members MEMBERS
 * visits, with nothing left over. Commands without arguments pass null.
 */
export function visitArguments<T>(args: unknown, members: ((v: InputVisitor) => T) | null): T {
  const v = new InputVisitor(args);
  v.startStruct(null);
  const r = members ? members(v) : ({} as T);
  v.checkStruct();
  v.endStruct();
  return r;
}
