// Generates introspect.ts: the answer to query-qmp-schema, computed once at
// generation time as QEMU does (its qmp_schema_qlit).

import { introspect } from "../introspect.js";
import { GenContext, HEADER } from "./common.js";

export function genIntrospect(ctx: GenContext): string {
  let out = HEADER;
  out += "// What query-qmp-schema returns. Type names are masked as numbers, as in QEMU;\n";
  out += "// the comments map them back to the schema's names.\n\n";
  out += "export const QMP_SCHEMA_INFO: readonly unknown[] = [\n";
  for (const e of introspect(ctx.schema, { defined: ctx.defined })) {
    if (e.comment) out += `  // ${e.comment}\n`;
    out += `  ${JSON.stringify(e.value)},\n`;
  }
  out += "];\n";
  return out;
}
