// Generates events.ts: each event's data type and typed emitters, so code
// that raises an event cannot get its name or data wrong.

import { GenContext, HEADER, jsdoc, propKey, str, summary, tsName } from "./common.js";

export function genEvents(ctx: GenContext): string {
  const events = ctx.schema.events().filter((e) => ctx.on(e.ifcond));
  const typeNames = [...new Set(events.filter((e) => e.argType).map((e) => tsName(e.argType!.name)))].sort();
  let out = HEADER + "// The schema's events: data types and typed emitters.\n\n";
  if (typeNames.length > 0) out += `import type {\n${typeNames.map((n) => `  ${n},\n`).join("")}} from "./types.js";\n\n`;
  out += "/** Every event's data; undefined for events without data. */\nexport interface QmpEventMap {\n";
  for (const e of events) {
    out += jsdoc(summary(e.doc), "  ");
    out += `  ${propKey(e.name)}: ${e.argType ? tsName(e.argType.name) : "undefined"};\n`;
  }
  out += `}

export type QmpEventName = keyof QmpEventMap;

export type QmpEventEmitters = {
  [K in keyof QmpEventMap]: QmpEventMap[K] extends undefined ? () => void : (data: QmpEventMap[K]) => void;
};

/** One function per event that hands the event's name and data to EMIT. */
export function createEventEmitters(
  emit: (event: string, data?: Record<string, unknown>) => void,
): QmpEventEmitters {
  return {
`;
  for (const e of events) {
    if (e.argType) out += `    ${propKey(e.name)}: (data: ${tsName(e.argType.name)}) => emit(${str(e.name)}, { ...data }),\n`;
    else out += `    ${propKey(e.name)}: () => emit(${str(e.name)}),\n`;
  }
  out += "  };\n}\n";
  return out;
}
