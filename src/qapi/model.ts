// The schema's entities and their semantic checks (QEMU's scripts/qapi/schema.py):
// built-in types, enums, objects (structs, unions, and the implicit argument
// types q_obj_<cmd>-arg / base types q_obj_<union>-base), alternates, arrays,
// commands and events. Checking resolves type names and reports clashes,
// unknown types and union/alternate rule violations with QEMU's wording.

import * as path from "node:path";
import { checkExprs, cName } from "./checker.js";
import type { QapiDoc } from "./doc.js";
import { toIfCond } from "./ifcond.js";
import type { IfCond } from "./ifcond.js";
import { parseSchema } from "./parser.js";
import type { ParsedExpr, ParsedInclude } from "./parser.js";
import { isDict, QapiError, SourceInfo } from "./source.js";
import type { QDict, QExpr } from "./source.js";

export type JsonType = "string" | "number" | "int" | "boolean" | "null" | "value" | "object" | "array";

// ---------------------------------------------------------------- members

export class Member {
  role = "member";
  definedIn: string | null = null;

  constructor(
    readonly name: string,
    readonly info: SourceInfo | null,
    readonly ifcond: IfCond | null,
  ) {}

  /** "member 'x'", "parameter 'x' of command 'c'", "base member 'x'", ... */
  describe(info: SourceInfo | null): string {
    let role = this.role;
    let meta = "type";
    let definedIn = this.definedIn ?? "";
    if (definedIn.startsWith("q_obj_")) {
      // Undo the naming of implicit types for a readable message.
      definedIn = definedIn.slice(6);
      if (definedIn.endsWith("-arg")) {
        role = "parameter";
        meta = "command";
        definedIn = definedIn.slice(0, -4);
      } else if (definedIn.endsWith("-base")) {
        role = "base " + role;
        definedIn = definedIn.slice(0, -5);
      }
    }
    if (info && definedIn !== info.defnName) return `${role} '${this.name}' of ${meta} '${definedIn}'`;
    return `${role} '${this.name}'`;
  }

  checkClash(info: SourceInfo | null, seen: Map<string, Member>): void {
    const c = cName(this.name);
    const other = seen.get(c);
    if (other) throw new QapiError(info, `${this.describe(info)} collides with ${other.describe(info)}`);
    seen.set(c, this);
  }
}

export class Feature extends Member {
  override role = "feature";
  /** 'deprecated' and 'unstable' have a meaning to QEMU itself. */
  isSpecial(): boolean {
    return this.name === "deprecated" || this.name === "unstable";
  }
}

export class EnumMember extends Member {
  override role = "value";
  constructor(name: string, info: SourceInfo | null, ifcond: IfCond | null, readonly features: Feature[]) {
    super(name, info, ifcond);
  }
}

export class ObjectTypeMember extends Member {
  type: Type | null = null;

  constructor(
    name: string,
    info: SourceInfo | null,
    readonly typeName: string,
    readonly optional: boolean,
    ifcond: IfCond | null,
    readonly features: Feature[],
  ) {
    super(name, info, ifcond);
  }

  check(schema: Schema): void {
    this.type = schema.resolveType(this.typeName, this.info, (info) => this.describe(info));
    const seen = new Map<string, Member>();
    for (const f of this.features) f.checkClash(this.info, seen);
  }

  get checkedType(): Type {
    if (!this.type) throw new Error(`member ${this.name} not checked`);
    return this.type;
  }
}

export class Variant extends ObjectTypeMember {
  override role = "branch";
  constructor(name: string, info: SourceInfo | null, typeName: string, ifcond: IfCond | null) {
    super(name, info, typeName, false, ifcond, []);
  }
}

// ---------------------------------------------------------------- entities

export abstract class Entity {
  abstract readonly meta: string;
  protected checked = false;

  constructor(
    readonly name: string,
    readonly info: SourceInfo | null,
    readonly doc: QapiDoc | null,
    readonly ifcond: IfCond | null,
    readonly features: Feature[],
  ) {
    for (const f of features) f.definedIn = name;
  }

  check(_schema: Schema): void {
    const seen = new Map<string, Member>();
    for (const f of this.features) f.checkClash(this.info, seen);
    this.checked = true;
  }

  connectDoc(doc: QapiDoc | null = this.doc): void {
    if (doc) for (const f of this.features) connectFeature(doc, f);
  }

  describe(): string {
    return `${this.meta} '${this.name}'`;
  }
}

function connectMember(doc: QapiDoc, m: Member): void {
  doc.connectMember(m.name);
  // A member's features are described in the definition's "Features:" part.
  if (m instanceof ObjectTypeMember || m instanceof EnumMember) {
    for (const f of m.features) connectFeature(doc, f);
  }
}

function connectFeature(doc: QapiDoc, f: Feature): void {
  doc.connectFeature(f.name, f.info);
}

export abstract class Type extends Entity {
  abstract jsonType(): JsonType;

  override check(schema: Schema): void {
    super.check(schema);
    for (const f of this.features) {
      if (f.isSpecial()) throw new QapiError(this.info, `feature '${f.name}' is not supported for types`);
    }
  }

  /** The QType a value of this type has on the wire, for alternates; null if ambiguous. */
  alternateQtype(): string | null {
    const map: Record<JsonType, string | null> = {
      string: "QTYPE_QSTRING",
      number: "QTYPE_QNUM",
      int: "QTYPE_QNUM",
      boolean: "QTYPE_QBOOL",
      null: "QTYPE_QNULL",
      object: "QTYPE_QDICT",
      array: "QTYPE_QLIST",
      value: null,
    };
    return map[this.jsonType()];
  }

  isImplicit(): boolean {
    return this.name.startsWith("q_");
  }

  override describe(): string {
    return `${this.meta} type '${this.name}'`;
  }
}

export class BuiltinType extends Type {
  readonly meta = "built-in";
  constructor(name: string, private readonly json: JsonType) {
    super(name, null, null, null, []);
  }
  jsonType(): JsonType {
    return this.json;
  }
}

export class EnumType extends Type {
  readonly meta = "enum";
  constructor(
    name: string,
    info: SourceInfo | null,
    doc: QapiDoc | null,
    ifcond: IfCond | null,
    features: Feature[],
    readonly members: EnumMember[],
    readonly prefix: string | null,
  ) {
    super(name, info, doc, ifcond, features);
    for (const m of members) m.definedIn = name;
  }
  override check(schema: Schema): void {
    super.check(schema);
    const seen = new Map<string, Member>();
    for (const m of this.members) {
      m.checkClash(this.info, seen);
      const fseen = new Map<string, Member>();
      for (const f of m.features) f.checkClash(this.info, fseen);
    }
  }
  override connectDoc(doc: QapiDoc | null = this.doc): void {
    super.connectDoc(doc);
    if (doc) for (const m of this.members) connectMember(doc, m);
  }
  memberNames(): string[] {
    return this.members.map((m) => m.name);
  }
  jsonType(): JsonType {
    return "string";
  }
}

export class ArrayType extends Type {
  readonly meta = "array";
  elementType: Type | null = null;
  constructor(name: string, info: SourceInfo | null, readonly elementTypeName: string) {
    super(name, info, null, null, []);
  }
  override check(schema: Schema): void {
    super.check(schema);
    this.elementType = schema.resolveType(this.elementTypeName, this.info, this.info?.defnMeta ?? "array");
  }
  get element(): Type {
    if (!this.elementType) throw new Error(`array ${this.name} not checked`);
    return this.elementType;
  }
  jsonType(): JsonType {
    return "array";
  }
  /** Names the array as written in the schema, ['Elem'] (QEMU's QAPISchemaArrayType.describe). */
  override describe(): string {
    return `${this.meta} type ['${this.elementTypeName}']`;
  }
}

export class Variants {
  tagMember: ObjectTypeMember | null;

  constructor(
    readonly tagName: string | null,
    readonly info: SourceInfo | null,
    tagMember: ObjectTypeMember | null,
    readonly variants: Variant[],
  ) {
    this.tagMember = tagMember;
  }

  setDefinedIn(name: string): void {
    for (const v of this.variants) v.definedIn = name;
  }

  get tag(): ObjectTypeMember {
    if (!this.tagMember) throw new Error("variants not checked");
    return this.tagMember;
  }

  /** `seen` holds the union's base members; it is empty for alternates. */
  check(schema: Schema, seen: Map<string, Member>): void {
    if (this.tagName !== null) {
      const tag = seen.get(cName(this.tagName));
      if (!(tag instanceof ObjectTypeMember) || tag.name !== this.tagName) {
        throw new QapiError(this.info, `discriminator '${this.tagName}' is not a member of 'base'`);
      }
      this.tagMember = tag;
      let base = "'base'";
      const baseType = schema.lookupType(tag.definedIn ?? "");
      if (baseType && !baseType.isImplicit()) base = `base type '${tag.definedIn}'`;
      if (!(tag.type instanceof EnumType)) {
        throw new QapiError(this.info, `discriminator member '${this.tagName}' of ${base} must be of enum type`);
      }
      if (tag.optional) {
        throw new QapiError(this.info, `discriminator member '${this.tagName}' of ${base} must not be optional`);
      }
      if (tag.ifcond !== null) {
        throw new QapiError(this.info, `discriminator member '${this.tagName}' of ${base} must not be conditional`);
      }
      // Enum values without a branch get an empty one.
      const cases = new Set(this.variants.map((v) => v.name));
      for (const m of tag.type.members) {
        if (!cases.has(m.name)) {
          const v = new Variant(m.name, this.info, "q_empty", m.ifcond);
          v.definedIn = tag.definedIn;
          this.variants.push(v);
        }
      }
    }
    if (this.variants.length === 0) throw new QapiError(this.info, "union has no branches");
    for (const v of this.variants) {
      v.check(schema);
      if (this.tagName !== null) {
        const tagType = this.tag.checkedType as EnumType;
        if (!tagType.memberNames().includes(v.name)) {
          throw new QapiError(this.info, `branch '${v.name}' is not a value of ${tagType.describe()}`);
        }
        if (!(v.type instanceof ObjectType)) {
          throw new QapiError(this.info, `${v.describe(this.info)} cannot use ${v.checkedType.describe()}`);
        }
        v.type.check(schema);
      }
    }
  }

  checkClash(info: SourceInfo | null, seen: Map<string, Member>): void {
    // Each branch is checked against the base alone: branches never meet.
    for (const v of this.variants) (v.checkedType as ObjectType).checkClash(info, new Map(seen));
  }
}

export class ObjectType extends Type {
  readonly meta: "struct" | "union";
  base: ObjectType | null = null;
  /** All members, base first; null until checked. */
  private flat: ObjectTypeMember[] | null = null;

  constructor(
    name: string,
    info: SourceInfo | null,
    doc: QapiDoc | null,
    ifcond: IfCond | null,
    features: Feature[],
    readonly baseName: string | null,
    readonly localMembers: ObjectTypeMember[],
    readonly variants: Variants | null,
  ) {
    super(name, info, doc, ifcond, features);
    this.meta = variants ? "union" : "struct";
    for (const m of localMembers) m.definedIn = name;
    variants?.setDefinedIn(name);
  }

  override check(schema: Schema): void {
    if (this.flat) return;
    // Recursed into ourselves before finishing: the type would contain itself.
    if (this.checked) throw new QapiError(this.info, `object ${this.name} contains itself`);
    super.check(schema);
    const seen = new Map<string, Member>();
    if (this.baseName !== null) {
      const base = schema.resolveType(this.baseName, this.info, "'base'");
      if (!(base instanceof ObjectType) || base.variants) {
        throw new QapiError(this.info, `'base' requires a struct type, ${base.describe()} isn't`);
      }
      this.base = base;
      base.check(schema);
      base.checkClash(this.info, seen);
    }
    for (const m of this.localMembers) {
      m.check(schema);
      m.checkClash(this.info, seen);
    }
    const members = [...seen.values()] as ObjectTypeMember[];
    if (this.variants) {
      this.variants.check(schema, seen);
      this.variants.checkClash(this.info, seen);
    }
    this.flat = members;
  }

  checkClash(info: SourceInfo | null, seen: Map<string, Member>): void {
    for (const m of this.members) m.checkClash(info, seen);
    this.variants?.checkClash(info, seen);
  }

  override connectDoc(doc: QapiDoc | null = this.doc): void {
    super.connectDoc(doc);
    if (!doc) return;
    if (this.base && this.base.isImplicit()) this.base.connectDoc(doc);
    for (const m of this.localMembers) connectMember(doc, m);
  }

  get members(): ObjectTypeMember[] {
    if (!this.flat) throw new Error(`object ${this.name} not checked`);
    return this.flat;
  }

  jsonType(): JsonType {
    return "object";
  }
}

export class AlternateType extends Type {
  readonly meta = "alternate";
  constructor(
    name: string,
    info: SourceInfo | null,
    doc: QapiDoc | null,
    ifcond: IfCond | null,
    features: Feature[],
    readonly variants: Variants,
  ) {
    super(name, info, doc, ifcond, features);
    variants.setDefinedIn(name);
    variants.tag.definedIn = name;
  }

  override check(schema: Schema): void {
    super.check(schema);
    this.variants.tag.check(schema);
    this.variants.check(schema, new Map());
    // Branch names have no relation to an enum, so check them for clashes here.
    const seen = new Map<string, Member>();
    const typesSeen = new Map<string, string>();
    for (const v of this.variants.variants) {
      v.checkClash(this.info, seen);
      const t = v.checkedType;
      const qtype = t.alternateQtype();
      if (!qtype) throw new QapiError(this.info, `${v.describe(this.info)} cannot use ${t.describe()}`);
      const conflicting = new Set([qtype]);
      if (qtype === "QTYPE_QSTRING") {
        // Keyval input (the command line) gives every scalar as a string.
        if (t instanceof EnumType) {
          for (const m of t.members) {
            if (m.name === "on" || m.name === "off") conflicting.add("QTYPE_QBOOL");
            if (/^[-+0-9.]/.test(m.name)) conflicting.add("QTYPE_QNUM");
          }
        } else {
          conflicting.add("QTYPE_QNUM");
          conflicting.add("QTYPE_QBOOL");
        }
      }
      for (const qt of conflicting) {
        const prev = typesSeen.get(qt);
        if (prev !== undefined) {
          throw new QapiError(this.info, `${v.describe(this.info)} can't be distinguished from '${prev}'`);
        }
        typesSeen.set(qt, v.name);
      }
    }
  }

  override connectDoc(doc: QapiDoc | null = this.doc): void {
    super.connectDoc(doc);
    if (doc) for (const v of this.variants.variants) connectMember(doc, v);
  }

  jsonType(): JsonType {
    return "value";
  }
}

export interface CommandFlags {
  readonly gen: boolean;
  readonly successResponse: boolean;
  readonly boxed: boolean;
  readonly allowOob: boolean;
  readonly allowPreconfig: boolean;
  readonly coroutine: boolean;
}

export class Command extends Entity {
  readonly meta = "command";
  argType: ObjectType | null = null;
  retType: Type | null = null;

  constructor(
    name: string,
    info: SourceInfo | null,
    doc: QapiDoc | null,
    ifcond: IfCond | null,
    features: Feature[],
    readonly argTypeName: string | null,
    readonly retTypeName: string | null,
    readonly flags: CommandFlags,
  ) {
    super(name, info, doc, ifcond, features);
  }

  override check(schema: Schema): void {
    super.check(schema);
    this.argType = checkArgType(schema, this, "command", this.argTypeName, this.flags.boxed);
    if (this.retTypeName !== null) {
      const ret = schema.resolveType(this.retTypeName, this.info, "command's 'returns'");
      this.retType = ret;
      if (!this.info?.pragma.commandReturnsExceptions.includes(this.name)) {
        const t = ret instanceof ArrayType ? ret.element : ret;
        if (!(t instanceof ObjectType)) {
          throw new QapiError(this.info, `command's 'returns' cannot take ${ret.describe()}`);
        }
      }
    }
  }

  override connectDoc(doc: QapiDoc | null = this.doc): void {
    super.connectDoc(doc);
    if (doc && this.argType && this.argType.isImplicit()) this.argType.connectDoc(doc);
  }
}

export class Event extends Entity {
  readonly meta = "event";
  argType: ObjectType | null = null;

  constructor(
    name: string,
    info: SourceInfo | null,
    doc: QapiDoc | null,
    ifcond: IfCond | null,
    features: Feature[],
    readonly argTypeName: string | null,
    readonly boxed: boolean,
  ) {
    super(name, info, doc, ifcond, features);
  }

  override check(schema: Schema): void {
    super.check(schema);
    this.argType = checkArgType(schema, this, "event", this.argTypeName, this.boxed);
  }

  override connectDoc(doc: QapiDoc | null = this.doc): void {
    super.connectDoc(doc);
    if (doc && this.argType && this.argType.isImplicit()) this.argType.connectDoc(doc);
  }
}

function checkArgType(
  schema: Schema,
  ent: Entity,
  what: "command" | "event",
  typeName: string | null,
  boxed: boolean,
): ObjectType | null {
  if (typeName === null) return null;
  const t = schema.resolveType(typeName, ent.info, `${what}'s 'data'`);
  if (!(t instanceof ObjectType)) {
    throw new QapiError(ent.info, `${what}'s 'data' cannot take ${t.describe()}`);
  }
  if (t.variants && !boxed) {
    throw new QapiError(ent.info, `${what}'s 'data' can take ${t.describe()} only with 'boxed': true`);
  }
  // QEMU 7.2 lets unboxed arguments be conditional (qapi-schema-test.json's test-if-cmd);
  // the generated validators leave out the members whose condition is off.
  t.check(schema);
  return t;
}

// ---------------------------------------------------------------- the schema

const BUILTINS: [string, JsonType][] = [
  ["str", "string"],
  ["number", "number"],
  ["int", "int"],
  ["int8", "int"],
  ["int16", "int"],
  ["int32", "int"],
  ["int64", "int"],
  ["uint8", "int"],
  ["uint16", "int"],
  ["uint32", "int"],
  ["uint64", "int"],
  ["size", "int"],
  ["bool", "boolean"],
  ["any", "value"],
  ["null", "null"],
];

/** The module of QEMU's built-in types. */
export const BUILTIN_MODULE = "./builtin";

/** An 'include' directive: QEMU's QAPISchemaInclude, naming the included module. */
export interface SchemaInclude {
  readonly include: string;
  readonly info: SourceInfo;
}

/** One schema file (QEMU's QAPISchemaModule) and what it defines, includes among them. */
export interface SchemaModule {
  readonly name: string;
  readonly entities: (Entity | SchemaInclude)[];
}

export class Schema {
  readonly entities: Entity[] = [];
  private readonly byName = new Map<string, Entity>();
  readonly emptyObjectType: ObjectType;

  /** Parses, checks and builds the model of the schema in FNAME. */
  static load(fname: string): Schema {
    const parsed = parseSchema(fname);
    checkExprs(parsed.exprs);
    return new Schema(parsed.exprs, { fname, includes: parsed.includes, docs: parsed.docs });
  }

  /** Every documentation comment, free-form ones too, in source order. */
  readonly docs: readonly QapiDoc[];
  /** The modules (schema files) in the order QEMU makes them, each with its entities. */
  readonly modules: SchemaModule[] = [];

  constructor(
    exprs: readonly ParsedExpr[],
    source: { fname: string; includes: readonly ParsedInclude[]; docs: readonly QapiDoc[] } = {
      fname: exprs[0]?.info.fname ?? "",
      includes: [],
      docs: [],
    },
  ) {
    this.docs = source.docs;
    for (const [name, json] of BUILTINS) {
      this.defEntity(new BuiltinType(name, json));
      this.makeArrayType(name, null);
    }
    this.emptyObjectType = new ObjectType("q_empty", null, null, null, [], null, [], null);
    this.defEntity(this.emptyObjectType);
    const qtypes = ["none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool"];
    this.defEntity(
      new EnumType("QType", null, null, null, [], qtypes.map((n) => new EnumMember(n, null, null, [])), "QTYPE"),
    );
    // QEMU's QAPISchema: the built-in module, the main file's, then one per file as its
    // first 'include' directive is reached; each include is an entity of its module.
    const schemaDir = path.dirname(source.fname);
    const moduleName = (fname: string): string => path.relative(schemaDir, fname);
    const modules = new Map<string, SchemaModule>();
    const makeModule = (name: string): SchemaModule => {
      let m = modules.get(name);
      if (!m) {
        m = { name, entities: [] };
        modules.set(name, m);
        this.modules.push(m);
      }
      return m;
    };
    makeModule(BUILTIN_MODULE);
    makeModule(moduleName(source.fname));
    const order: (Entity | SchemaInclude)[] = [...this.entities];
    let next = 0;
    const includesBefore = (position: number): void => {
      for (; next < source.includes.length && source.includes[next]!.position <= position; next++) {
        const inc = source.includes[next]!;
        order.push({ include: makeModule(moduleName(inc.fname)).name, info: inc.info });
      }
    };
    exprs.forEach((e, i) => {
      includesBefore(i);
      const before = this.entities.length;
      this.defExpr(e);
      order.push(...this.entities.slice(before));
    });
    includesBefore(Infinity);
    for (const ent of this.entities) {
      ent.check(this);
      ent.connectDoc();
      ent.doc?.check();
    }
    for (const x of order) {
      // An array belongs to its element type's module (QEMU's QAPISchemaArrayType.set_module).
      const info = x instanceof ArrayType ? x.element.info : x.info;
      const name = info ? moduleName(info.fname) : BUILTIN_MODULE;
      (modules.get(name) ?? makeModule(name)).entities.push(x);
    }
  }

  /** The entities module by module, the order QEMU's QAPISchema.visit gives generators. */
  entitiesByModule(): Entity[] {
    return this.modules.flatMap((m) => m.entities.filter((x): x is Entity => x instanceof Entity));
  }

  lookupEntity(name: string): Entity | undefined {
    return this.byName.get(name);
  }

  lookupType(name: string): Type | undefined {
    const e = this.byName.get(name);
    return e instanceof Type ? e : undefined;
  }

  resolveType(name: string, info: SourceInfo | null, what: string | ((info: SourceInfo | null) => string)): Type {
    const t = this.lookupType(name);
    if (!t) {
      const w = typeof what === "function" ? what(info) : what;
      throw new QapiError(info, `${w} uses unknown type '${name}'`);
    }
    return t;
  }

  private defEntity(ent: Entity): void {
    this.entities.push(ent);
    const other = this.byName.get(ent.name);
    if (other) {
      if (other.info) {
        const where = QapiError.format(other.info, "previous definition", null);
        throw new QapiError(ent.info, `'${ent.name}' is already defined\n${where}`);
      }
      throw new QapiError(ent.info, `${other.describe()} is already defined`);
    }
    this.byName.set(ent.name, ent);
  }

  private makeArrayType(elementTypeName: string, info: SourceInfo | null): string {
    const name = elementTypeName + "List";
    if (!this.byName.has(name)) this.defEntity(new ArrayType(name, info, elementTypeName));
    return name;
  }

  private makeImplicitObjectType(
    name: string,
    info: SourceInfo,
    ifcond: IfCond | null,
    role: "arg" | "base",
    members: ObjectTypeMember[],
  ): string | null {
    if (members.length === 0) return null;
    const typeName = `q_obj_${name}-${role}`;
    // An existing one means a duplicate definition, which defEntity reports later.
    if (!this.byName.has(typeName)) {
      this.defEntity(new ObjectType(typeName, info, null, ifcond, [], null, members, null));
    }
    return typeName;
  }

  private makeFeatures(v: QExpr | undefined, info: SourceInfo): Feature[] {
    if (!Array.isArray(v)) return [];
    return (v as QDict[]).map((f) => new Feature(f.get("name") as string, info, toIfCond(f.get("if"))));
  }

  private makeMembers(data: QDict, info: SourceInfo): ObjectTypeMember[] {
    return [...data].map(([key, value]) => {
      const d = value as QDict;
      const optional = key.startsWith("*");
      const name = optional ? key.slice(1) : key;
      let typ = d.get("type")!;
      if (Array.isArray(typ)) typ = this.makeArrayType(typ[0] as string, info);
      return new ObjectTypeMember(
        name,
        info,
        typ as string,
        optional,
        toIfCond(d.get("if")),
        this.makeFeatures(d.get("features"), info),
      );
    });
  }

  private makeVariants(data: QDict, info: SourceInfo): Variant[] {
    return [...data].map(([key, value]) => {
      const d = value as QDict;
      let typ = d.get("type")!;
      if (Array.isArray(typ)) typ = this.makeArrayType(typ[0] as string, info);
      return new Variant(key, info, typ as string, toIfCond(d.get("if")));
    });
  }

  private defExpr({ expr, info, doc }: ParsedExpr): void {
    const ifcond = toIfCond(expr.get("if"));
    const features = this.makeFeatures(expr.get("features"), info);
    if (expr.has("enum")) {
      const members = (expr.get("data") as QDict[]).map(
        (m) => new EnumMember(m.get("name") as string, info, toIfCond(m.get("if")), this.makeFeatures(m.get("features"), info)),
      );
      const prefix = expr.get("prefix");
      this.defEntity(
        new EnumType(expr.get("enum") as string, info, doc, ifcond, features, members, typeof prefix === "string" ? prefix : null),
      );
    } else if (expr.has("struct")) {
      const base = expr.get("base");
      this.defEntity(
        new ObjectType(
          expr.get("struct") as string,
          info,
          doc,
          ifcond,
          features,
          typeof base === "string" ? base : null,
          this.makeMembers(expr.get("data") as QDict, info),
          null,
        ),
      );
    } else if (expr.has("union")) {
      const name = expr.get("union") as string;
      const base = expr.get("base") as QExpr;
      let baseName: string | null = typeof base === "string" ? base : null;
      if (isDict(base)) baseName = this.makeImplicitObjectType(name, info, ifcond, "base", this.makeMembers(base, info));
      const variants = this.makeVariants(expr.get("data") as QDict, info);
      this.defEntity(
        new ObjectType(name, info, doc, ifcond, features, baseName, [], new Variants(expr.get("discriminator") as string, info, null, variants)),
      );
    } else if (expr.has("alternate")) {
      const variants = this.makeVariants(expr.get("data") as QDict, info);
      const tag = new ObjectTypeMember("type", info, "QType", false, null, []);
      this.defEntity(
        new AlternateType(expr.get("alternate") as string, info, doc, ifcond, features, new Variants(null, info, tag, variants)),
      );
    } else if (expr.has("command")) {
      const name = expr.get("command") as string;
      const argName = this.argTypeName(name, expr.get("data"), info, ifcond);
      let rets = expr.get("returns");
      if (Array.isArray(rets)) rets = this.makeArrayType(rets[0] as string, info);
      this.defEntity(
        new Command(name, info, doc, ifcond, features, argName, typeof rets === "string" ? rets : null, {
          gen: expr.get("gen") !== false,
          successResponse: expr.get("success-response") !== false,
          boxed: expr.get("boxed") === true,
          allowOob: expr.get("allow-oob") === true,
          allowPreconfig: expr.get("allow-preconfig") === true,
          coroutine: expr.get("coroutine") === true,
        }),
      );
    } else if (expr.has("event")) {
      const name = expr.get("event") as string;
      const argName = this.argTypeName(name, expr.get("data"), info, ifcond);
      this.defEntity(new Event(name, info, doc, ifcond, features, argName, expr.get("boxed") === true));
    }
  }

  private argTypeName(name: string, data: QExpr | undefined, info: SourceInfo, ifcond: IfCond | null): string | null {
    if (isDict(data)) return this.makeImplicitObjectType(name, info, ifcond, "arg", this.makeMembers(data, info));
    return typeof data === "string" ? data : null;
  }

  commands(): Command[] {
    return this.entities.filter((e): e is Command => e instanceof Command);
  }

  events(): Event[] {
    return this.entities.filter((e): e is Event => e instanceof Event);
  }
}
