// Generates types.ts: a TypeScript type for every enum, struct, union and
// alternate of the schema (including the implicit argument and base types).

import { AlternateType, EnumType, ObjectType, ObjectTypeMember, Type } from "../model.js";
import { GenContext, HEADER, jsdoc, propKey, str, summary, tsName, tsType } from "./common.js";

export function genTypes(ctx: GenContext): string {
  let out = HEADER + "// The schema's types: enums, structs, unions and alternates.\n";
  for (const t of ctx.declaredTypes()) out += "\n" + genType(ctx, t);
  return out;
}

function memberLines(ctx: GenContext, owner: Type, members: readonly ObjectTypeMember[], indent: string): string {
  let out = "";
  for (const m of members) {
    if (!ctx.on(m.ifcond)) continue;
    const doc = owner.doc?.args.get(m.name)?.text;
    out += jsdoc(doc, indent);
    out += `${indent}${propKey(m.name)}${m.optional ? "?" : ""}: ${tsType(m.checkedType)};\n`;
  }
  return out;
}

function genType(ctx: GenContext, t: Type): string {
  const name = tsName(t.name);
  let out = jsdoc(summary(t.doc) ?? (t.isImplicit() ? `Implicit type ${t.name}.` : undefined));
  if (t instanceof EnumType) {
    const values = t.members.filter((m) => ctx.on(m.ifcond)).map((m) => str(m.name));
    const oneLine = `export const ${name}_VALUES = [${values.join(", ")}] as const;\n`;
    out += oneLine.length <= 100 ? oneLine : `export const ${name}_VALUES = [\n${values.map((v) => `  ${v},\n`).join("")}] as const;\n`;
    out += `export type ${name} = (typeof ${name}_VALUES)[number];\n`;
  } else if (t instanceof ObjectType && !t.variants) {
    const ext = t.base ? ` extends ${tsName(t.base.name)}` : "";
    out += `export interface ${name}${ext} {\n${memberLines(ctx, t, t.localMembers, "  ")}}\n`;
  } else if (t instanceof ObjectType && t.variants) {
    // A flat union: the base's members plus those of the branch the tag selects.
    const tag = t.variants.tag.name;
    const base = t.base!;
    const branches = t.variants.variants.filter((v) => ctx.on(v.ifcond));
    out += `export type ${name} =\n`;
    for (const v of branches) {
      const parts = [`Omit<${tsName(base.name)}, ${str(tag)}>`, `{ ${propKey(tag)}: ${str(v.name)} }`];
      if (v.checkedType.name !== "q_empty") parts.push(tsName(v.checkedType.name));
      out += `  | (${parts.join(" & ")})\n`;
    }
    if (branches.length === 0) out += "  never\n";
    out = out.trimEnd() + ";\n";
  } else if (t instanceof AlternateType) {
    const types = t.variants.variants.filter((v) => ctx.on(v.ifcond)).map((v) => tsType(v.checkedType));
    out += `export type ${name} = ${types.join(" | ") || "never"};\n`;
  }
  return out;
}
