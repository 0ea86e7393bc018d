// Prints a schema the way QEMU's tests/qapi-schema/test-qapi.py does (its
// .out files): module by module, each entity with its members, branches,
// conditions and features, then every documentation comment. Comparing with
// QEMU's .out checks the model (implicit types, module order, member order,
// conditions) and the doc-comment reader (sections, indentation) at once.

import type { QapiDoc } from "../../src/qapi/doc.js";
import type { IfCond } from "../../src/qapi/ifcond.js";
import {
  AlternateType,
  ArrayType,
  Command,
  EnumType,
  Event,
  ObjectType,
  Schema,
  type Feature,
  type Variants,
} from "../../src/qapi/model.js";

/** Python's repr of a normalised condition, as test-qapi.py prints it (a bare name unquoted). */
function pyRepr(c: IfCond): string {
  if (typeof c === "string") return `'${c}'`;
  if ("not" in c) return `{'not': ${pyRepr(c.not)}}`;
  if ("all" in c) return `{'all': [${c.all.map(pyRepr).join(", ")}]}`;
  return `{'any': [${c.any.map(pyRepr).join(", ")}]}`;
}

export function dumpSchema(schema: Schema): string {
  const out: string[] = [];
  const ifLine = (c: IfCond | null, indent = 4): void => {
    if (c !== null) out.push(`${" ".repeat(indent)}if ${typeof c === "string" ? c : pyRepr(c)}`);
  };
  const features = (fs: readonly Feature[], indent = 4): void => {
    for (const f of fs) {
      out.push(`${" ".repeat(indent)}feature ${f.name}`);
      ifLine(f.ifcond, indent + 4);
    }
  };
  const variants = (v: Variants | null): void => {
    if (!v) return;
    out.push(`    tag ${v.tag.name}`);
    for (const b of v.variants) {
      out.push(`    case ${b.name}: ${b.checkedType.name}`);
      ifLine(b.ifcond, 8);
    }
  };

  for (const mod of schema.modules) {
    out.push(`module ${mod.name}`);
    for (const ent of mod.entities) {
      if (!("meta" in ent)) {
        out.push(`include ${ent.include}`);
      } else if (ent instanceof EnumType) {
        out.push(`enum ${ent.name}`);
        if (ent.prefix !== null) out.push(`    prefix ${ent.prefix}`);
        for (const m of ent.members) {
          out.push(`    member ${m.name}`);
          ifLine(m.ifcond, 8);
          features(m.features, 8);
        }
        ifLine(ent.ifcond);
        features(ent.features);
      } else if (ent instanceof ArrayType) {
        // Built-in arrays have no source; test-qapi.py leaves them out.
        if (!ent.info) continue;
        out.push(`array ${ent.name} ${ent.element.name}`);
        ifLine(ent.element.ifcond);
      } else if (ent instanceof ObjectType) {
        out.push(`object ${ent.name}`);
        if (ent.base) out.push(`    base ${ent.base.name}`);
        for (const m of ent.localMembers) {
          out.push(`    member ${m.name}: ${m.checkedType.name} optional=${m.optional ? "True" : "False"}`);
          ifLine(m.ifcond, 8);
          features(m.features, 8);
        }
        variants(ent.variants);
        ifLine(ent.ifcond);
        features(ent.features);
      } else if (ent instanceof AlternateType) {
        out.push(`alternate ${ent.name}`);
        variants(ent.variants);
        ifLine(ent.ifcond);
        features(ent.features);
      } else if (ent instanceof Command) {
        const f = ent.flags;
        const py = (b: boolean): string => (b ? "True" : "False");
        out.push(`command ${ent.name} ${ent.argType?.name ?? "None"} -> ${ent.retType?.name ?? "None"}`);
        out.push(
          `    gen=${py(f.gen)} success_response=${py(f.successResponse)} boxed=${py(f.boxed)} ` +
            `oob=${py(f.allowOob)} preconfig=${py(f.allowPreconfig)}${f.coroutine ? " coroutine=True" : ""}`,
        );
        ifLine(ent.ifcond);
        features(ent.features);
      } else if (ent instanceof Event) {
        out.push(`event ${ent.name} ${ent.argType?.name ?? "None"}`);
        out.push(`    boxed=${ent.boxed ? "True" : "False"}`);
        ifLine(ent.ifcond);
        features(ent.features);
      }
      // Built-in scalar types print nothing (test-qapi.py has no visit_builtin_type).
    }
  }
  for (const doc of schema.docs) dumpDoc(doc, out);
  return out.map((l) => l + "\n").join("");
}

function dumpDoc(doc: QapiDoc, out: string[]): void {
  out.push(doc.symbol ? `doc symbol=${doc.symbol}` : "doc freeform");
  out.push(`    body=\n${doc.body}`);
  for (const a of doc.args.values()) out.push(`    arg=${a.name}\n${a.text}`);
  for (const f of doc.features.values()) out.push(`    feature=${f.name}\n${f.text}`);
  for (const s of doc.sections) out.push(`    section=${s.name ?? "None"}\n${s.text}`);
}
