// Generates commands.ts: the command table the QMP dispatcher uses (flags
// and argument validators, in schema order) and the typed map from command
// name to arguments and reply that handlers and clients are written against.

import { Command, ObjectType } from "../model.js";
import { GenContext, HEADER, jsdoc, referencedNames, str, summary, tsName, tsType } from "./common.js";
import { membersFn } from "./visitors.js";

function argsType(c: Command): string {
  return c.argType ? tsName(c.argType.name) : "Record<string, never>";
}

function retType(c: Command): string {
  return c.retType ? tsType(c.retType) : "Record<string, never>";
}

export function genCommands(ctx: GenContext): string {
  const commands = ctx.schema.commands().filter((c) => ctx.on(c.ifcond));
  const typeNames = new Set<string>();
  const fns = new Set<string>();
  for (const c of commands) {
    if (c.argType) {
      typeNames.add(tsName(c.argType.name));
      fns.add(membersFn(c.argType));
    }
    if (c.retType) for (const n of referencedNames(c.retType)) typeNames.add(n);
  }

  let out = HEADER;
  out += "// The schema's commands: flags, argument validators, and argument/reply types.\n\n";
  out += `import { visitArguments } from "../runtime.js";\n`;
  if (typeNames.size > 0) {
    out += `import type {\n${[...typeNames].sort().map((n) => `  ${n},\n`).join("")}} from "./types.js";\n`;
  }
  if (fns.size > 0) out += `import {\n${[...fns].sort().map((n) => `  ${n},\n`).join("")}} from "./visitors.js";\n`;
  out += `
export interface CommandSpec {
  readonly name: string;
  /** May run out of band ('exec-oob'), without waiting for the big lock. */
  readonly allowOob: boolean;
  /** False for commands that send no reply on success. */
  readonly successResponse: boolean;
  /** May run before the machine is initialised (--preconfig). */
  readonly allowPreconfig: boolean;
  /** False when the schema leaves argument handling to hand-written code ('gen': false). */
  readonly gen: boolean;
  readonly features: readonly string[];
  /** Checks the request's arguments; throws QmpError with QEMU's message. */
  parseArgs(args: Record<string, unknown>): unknown;
}

/** Every command's arguments and reply. */
export interface QmpCommandMap {
`;
  for (const c of commands) {
    out += jsdoc(summary(c.doc), "  ");
    out += `  ${str(c.name)}: { args: ${argsType(c)}; ret: ${retType(c)} };\n`;
  }
  const oob = commands.filter((c) => c.flags.allowOob).map((c) => str(c.name));
  const oobUnion = oob.length > 0 ? oob.join(" | ") : "never";
  out += `}

export type QmpCommandName = keyof QmpCommandMap;

/** The commands the schema marks 'allow-oob': their handlers may run without the big lock. */
export type QmpOobCommandName = ${oobUnion};

export type QmpHandlers = {
  [K in QmpCommandName]: (args: QmpCommandMap[K]["args"]) => QmpCommandMap[K]["ret"] | Promise<QmpCommandMap[K]["ret"]>;
};

/** The commands in schema order. */
export const QMP_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
`;
  for (const c of commands) {
    const features = c.features.filter((f) => ctx.on(f.ifcond)).map((f) => str(f.name));
    // Arguments are checked even for 'gen': false commands: QEMU 7.2 rejects
    // unexpected arguments to query-qmp-schema like any other command's.
    const parse = c.argType ? `visitArguments(args, ${membersFn(c.argType as ObjectType)})` : "visitArguments(args, null)";
    out += `  [\n    ${str(c.name)},\n    {\n`;
    out += `      name: ${str(c.name)},\n`;
    out += `      allowOob: ${c.flags.allowOob},\n`;
    out += `      successResponse: ${c.flags.successResponse},\n`;
    out += `      allowPreconfig: ${c.flags.allowPreconfig},\n`;
    out += `      gen: ${c.flags.gen},\n`;
    out += `      features: [${features.join(", ")}],\n`;
    out += `      parseArgs: (args: Record<string, unknown>): ${argsType(c)} => ${parse},\n`;
    out += `    },\n  ],\n`;
  }
  out += "]);\n";
  return out;
}
