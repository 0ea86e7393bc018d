// Generates visitors.ts: input validators with QEMU's qobject-input-visitor
// semantics, one per object and alternate type, that turn parsed JSON into
// the types of types.ts or throw QEMU's QmpError.

import { AlternateType, ArrayType, BuiltinType, EnumType, ObjectType, Type } from "../model.js";
import { GenContext, HEADER, str, tsName } from "./common.js";

const BUILTIN_VISITS: Record<string, (n: string) => string> = {
  str: (n) => `v.str(${n})`,
  number: (n) => `v.number(${n})`,
  int: (n) => `v.int64(${n})`,
  int64: (n) => `v.int64(${n})`,
  int8: (n) => `v.intN(${n}, 8)`,
  int16: (n) => `v.intN(${n}, 16)`,
  int32: (n) => `v.intN(${n}, 32)`,
  uint8: (n) => `v.uintN(${n}, 8)`,
  uint16: (n) => `v.uintN(${n}, 16)`,
  uint32: (n) => `v.uintN(${n}, 32)`,
  uint64: (n) => `v.uint64(${n})`,
  size: (n) => `v.uint64(${n})`,
  bool: (n) => `v.bool(${n})`,
  any: (n) => `v.any(${n})`,
  null: (n) => `v.null(${n})`,
};

/** The expression that visits a value of type T named by the expression NAME. */
export function visitExpr(t: Type, name: string): string {
  if (t instanceof BuiltinType) return BUILTIN_VISITS[t.name]!(name);
  if (t.name === "QType") return `v.enum(${name}, ["none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool"])`;
  if (t instanceof EnumType) return `v.enum(${name}, ${tsName(t.name)}_VALUES)`;
  if (t instanceof ArrayType) return `v.list(${name}, (n) => ${visitExpr(t.element, "n")})`;
  return `visit_${tsName(t.name)}(v, ${name})`;
}

export function membersFn(t: ObjectType): string {
  return `visit_${tsName(t.name)}_members`;
}

function local(name: string): string {
  return "m_" + name.replace(/[^A-Za-z0-9_]/g, "_");
}

function genObject(ctx: GenContext, t: ObjectType): string {
  const name = tsName(t.name);
  let out = `export function visit_${name}_members(v: InputVisitor): ${name} {\n`;
  const fields: string[] = [];
  if (t.base) {
    out += `  const base = ${membersFn(t.base)}(v);\n`;
    fields.push("...base");
  }
  const optional: string[] = [];
  for (const m of t.localMembers) {
    if (!ctx.on(m.ifcond)) continue;
    const visit = visitExpr(m.checkedType, str(m.name));
    if (m.optional) {
      out += `  const ${local(m.name)} = v.optional(${str(m.name)}) ? ${visit} : undefined;\n`;
      optional.push(m.name);
    } else {
      out += `  const ${local(m.name)} = ${visit};\n`;
      fields.push(`${JSON.stringify(m.name)}: ${local(m.name)}`);
    }
  }
  if (t.variants) {
    // Base members come first; the tag then picks the branch whose members follow.
    const tag = t.variants.tag.name;
    out += `  switch (base[${str(tag)}]) {\n`;
    for (const v of t.variants.variants) {
      if (!ctx.on(v.ifcond)) continue;
      const branch = v.checkedType as ObjectType;
      const parts = ["...base", `${str(tag)}: ${str(v.name)}`];
      if (branch.name !== "q_empty") parts.push(`...${membersFn(branch)}(v)`);
      out += `    case ${str(v.name)}:\n      return { ${parts.join(", ")} };\n`;
    }
    // A tag value whose branch is compiled out has no members (QEMU would abort).
    out += `    default:\n      return base as unknown as ${name};\n  }\n}\n`;
    return out;
  }
  out += `  const r: ${name} = { ${fields.join(", ")} };\n`;
  for (const m of optional) out += `  if (${local(m)} !== undefined) r[${str(m)}] = ${local(m)};\n`;
  out += "  return r;\n}\n";
  return out;
}

function genStruct(name: string): string {
  return (
    `export function visit_${name}(v: InputVisitor, name: string | null): ${name} {\n` +
    `  v.startStruct(name);\n  const r = visit_${name}_members(v);\n  v.checkStruct();\n  v.endStruct();\n  return r;\n}\n`
  );
}

const QTYPE_OF: Record<string, string> = {
  string: "qstring",
  number: "qnum",
  int: "qnum",
  boolean: "qbool",
  null: "qnull",
  object: "qdict",
  array: "qlist",
};

function genAlternate(ctx: GenContext, t: AlternateType): string {
  const name = tsName(t.name);
  let out = `export function visit_${name}(v: InputVisitor, name: string | null): ${name} {\n`;
  out += "  switch (v.alternateType(name)) {\n";
  for (const b of t.variants.variants) {
    if (!ctx.on(b.ifcond)) continue;
    out += `    case ${str(QTYPE_OF[b.checkedType.jsonType()]!)}:\n      return ${visitExpr(b.checkedType, "name")};\n`;
  }
  out += `    default:\n      throw v.alternateError(name, ${str(t.name)});\n  }\n}\n`;
  return out;
}

export function genVisitors(ctx: GenContext): string {
  const types = ctx.declaredTypes();
  let body = "";
  for (const t of types) {
    if (t instanceof ObjectType) body += "\n" + genObject(ctx, t) + "\n" + genStruct(tsName(t.name));
    else if (t instanceof AlternateType) body += "\n" + genAlternate(ctx, t);
  }
  // Import only what the validators use.
  const used = (n: string): boolean => new RegExp(`\\b${n.replace(/\$/g, "\\$")}\\b`).test(body);
  const imports = types.filter((t) => !(t instanceof EnumType)).map((t) => tsName(t.name)).filter(used);
  const values = types.filter((t) => t instanceof EnumType).map((t) => `${tsName(t.name)}_VALUES`).filter(used);
  let out = HEADER;
  out += "// Input validators: QEMU's qobject-input-visitor rules and error messages.\n\n";
  out += `import { InputVisitor } from "../runtime.js";\n`;
  if (imports.length > 0) out += `import type {\n${imports.map((i) => `  ${i},\n`).join("")}} from "./types.js";\n`;
  if (values.length > 0) out += `import {\n${values.map((i) => `  ${i},\n`).join("")}} from "./types.js";\n`;
  return out + body;
}
