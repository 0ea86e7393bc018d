// What query-qmp-schema returns for a schema (QEMU's scripts/qapi/introspect.py,
// qapi/introspect.json): commands and events in schema order, then every type
// they reach, in the order first reached. Type names are masked as numbers in
// that order unless unmasked; integer types all show as 'int'; arrays show as
// '[element]'. Conditional parts are dropped unless their condition holds.

import { evalIf } from "./ifcond.js";
import type { IfCond } from "./ifcond.js";
import {
  AlternateType,
  ArrayType,
  BuiltinType,
  Command,
  EnumType,
  Event,
  Feature,
  ObjectType,
  ObjectTypeMember,
  Schema,
  Type,
} from "./model.js";

export type JsonValue = null | string | boolean | number | JsonValue[] | { [key: string]: JsonValue };

/** A piece of output with the condition QEMU would wrap in #if. */
class Annotated {
  constructor(
    readonly value: Tree,
    readonly ifcond: IfCond | null,
    readonly comment: string | null = null,
  ) {}
}
type Tree = null | string | boolean | Tree[] | { [key: string]: Tree } | Annotated;

export interface IntrospectEntry {
  readonly value: { [key: string]: JsonValue };
  /** For masked types, e.g. '"1" = StatusInfo', to map numbers back to names. */
  readonly comment: string | null;
}

export interface IntrospectOptions {
  readonly unmask?: boolean;
  /** Configuration symbols that 'if' conditions test; none by default. */
  readonly defined?: ReadonlySet<string>;
}

export function introspect(schema: Schema, opts: IntrospectOptions = {}): IntrospectEntry[] {
  const gen = new IntrospectBuilder(schema, opts.unmask ?? false);
  const trees = gen.build();
  const defined = opts.defined ?? new Set<string>();
  const out: IntrospectEntry[] = [];
  for (const t of trees) {
    if (!evalIf(t.ifcond, defined)) continue;
    out.push({ value: strip(t.value, defined) as { [key: string]: JsonValue }, comment: t.comment });
  }
  return out;
}

function strip(t: Tree, defined: ReadonlySet<string>): JsonValue {
  if (t instanceof Annotated) return strip(t.value, defined);
  if (Array.isArray(t)) {
    return t.filter((e) => !(e instanceof Annotated) || evalIf(e.ifcond, defined)).map((e) => strip(e, defined));
  }
  if (t !== null && typeof t === "object") {
    const o: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(t)) o[k] = strip(v, defined);
    return o;
  }
  return t;
}

class IntrospectBuilder {
  private readonly trees: Annotated[] = [];
  private readonly used: Type[] = [];
  private readonly nameMap = new Map<string, string>();

  constructor(
    private readonly schema: Schema,
    private readonly unmask: boolean,
  ) {}

  build(): Annotated[] {
    // Module by module, as QEMU's introspect.py visits the schema.
    for (const ent of this.schema.entitiesByModule()) {
      if (ent instanceof Command) this.command(ent);
      else if (ent instanceof Event) this.event(ent);
    }
    // The work list grows while it is walked: visiting a type uses others.
    for (let i = 0; i < this.used.length; i++) this.type(this.used[i]!);
    return this.trees;
  }

  private name(name: string): string {
    if (this.unmask) return name;
    let n = this.nameMap.get(name);
    if (n === undefined) {
      n = String(this.nameMap.size);
      this.nameMap.set(name, n);
    }
    return n;
  }

  private useType(typ: Type): string {
    // Clients should not care which integer type it is.
    if (typ.jsonType() === "int") typ = this.schema.lookupType("int")!;
    else if (typ instanceof ArrayType && typ.element.jsonType() === "int") typ = this.schema.lookupType("intList")!;
    if (!this.used.includes(typ)) this.used.push(typ);
    if (typ instanceof BuiltinType) return typ.name;
    if (typ instanceof ArrayType) return "[" + this.useType(typ.element) + "]";
    return this.name(typ.name);
  }

  private features(features: Feature[]): Tree[] {
    return features.map((f) => new Annotated(f.name, f.ifcond));
  }

  private tree(name: string, metaType: string, obj: { [key: string]: Tree }, ifcond: IfCond | null, features: Feature[]): void {
    let comment: string | null = null;
    if (!["command", "event", "builtin", "array"].includes(metaType)) {
      if (!this.unmask) comment = `"${this.name(name)}" = ${name}`;
      name = this.name(name);
    }
    const entry: { [key: string]: Tree } = { name, "meta-type": metaType, ...obj };
    if (features.length > 0) entry["features"] = this.features(features);
    this.trees.push(new Annotated(entry, ifcond, comment));
  }

  private command(c: Command): void {
    const obj: { [key: string]: Tree } = {
      "arg-type": this.useType(c.argType ?? this.schema.emptyObjectType),
      "ret-type": this.useType(c.retType ?? this.schema.emptyObjectType),
    };
    if (c.flags.allowOob) obj["allow-oob"] = true;
    this.tree(c.name, "command", obj, c.ifcond, c.features);
  }

  private event(e: Event): void {
    this.tree(e.name, "event", { "arg-type": this.useType(e.argType ?? this.schema.emptyObjectType) }, e.ifcond, e.features);
  }

  private member(m: ObjectTypeMember): Annotated {
    const obj: { [key: string]: Tree } = { name: m.name, type: this.useType(m.checkedType) };
    if (m.optional) obj["default"] = null;
    if (m.features.length > 0) obj["features"] = this.features(m.features);
    return new Annotated(obj, m.ifcond);
  }

  private type(t: Type): void {
    if (t instanceof BuiltinType) {
      this.tree(t.name, "builtin", { "json-type": t.jsonType() }, null, []);
    } else if (t instanceof EnumType) {
      const members = t.members.map((m) => {
        const obj: { [key: string]: Tree } = { name: m.name };
        if (m.features.length > 0) obj["features"] = this.features(m.features);
        return new Annotated(obj, m.ifcond);
      });
      const values = t.members.map((m) => new Annotated(m.name, m.ifcond));
      this.tree(t.name, "enum", { members, values }, t.ifcond, t.features);
    } else if (t instanceof ArrayType) {
      const element = this.useType(t.element);
      // An array exists where its element type does (QEMU's QAPISchemaArrayType.check).
      this.tree("[" + element + "]", "array", { "element-type": element }, t.element.ifcond, []);
    } else if (t instanceof ObjectType) {
      const obj: { [key: string]: Tree } = { members: t.members.map((m) => this.member(m)) };
      if (t.variants) {
        obj["tag"] = t.variants.tag.name;
        obj["variants"] = t.variants.variants.map(
          (v) => new Annotated({ case: v.name, type: this.useType(v.checkedType) }, v.ifcond),
        );
      }
      this.tree(t.name, "object", obj, t.ifcond, t.features);
    } else if (t instanceof AlternateType) {
      const members = t.variants.variants.map((v) => new Annotated({ type: this.useType(v.checkedType) }, v.ifcond));
      this.tree(t.name, "alternate", { members }, t.ifcond, t.features);
    }
  }
}
