// 'if' conditions of the schema: a configuration symbol, or all/any/not of
// conditions (qapi-code-gen.rst, "Configuring the schema"). minivm has no C
// preprocessor, so the generators evaluate conditions against a set of
// defined symbols instead of emitting #if.

import { isDict } from "./source.js";
import type { QExpr } from "./source.js";

export type IfCond = string | { readonly all: IfCond[] } | { readonly any: IfCond[] } | { readonly not: IfCond };

/** Converts a checked 'if' value from the schema. */
export function toIfCond(v: QExpr | undefined): IfCond | null {
  if (v === undefined) return null;
  if (typeof v === "string") return v;
  if (isDict(v)) {
    const not = v.get("not");
    if (not !== undefined) return { not: toIfCond(not)! };
    const all = v.get("all");
    if (Array.isArray(all)) return { all: all.map((c) => toIfCond(c)!) };
    const any = v.get("any");
    if (Array.isArray(any)) return { any: any.map((c) => toIfCond(c)!) };
  }
  throw new Error("unchecked 'if' condition");
}

export function evalIf(cond: IfCond | null, defined: ReadonlySet<string>): boolean {
  if (cond === null) return true;
  if (typeof cond === "string") return defined.has(cond);
  if ("not" in cond) return !evalIf(cond.not, defined);
  if ("all" in cond) return cond.all.every((c) => evalIf(c, defined));
  return cond.any.some((c) => evalIf(c, defined));
}
