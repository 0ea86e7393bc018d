// Writes all generated modules into the output directory. Output depends only
// on the schema, so regenerating an unchanged schema changes no file.

import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import type { Schema } from "../model.js";
import { genCommands } from "./commands.js";
import { GenContext } from "./common.js";
import { genEvents } from "./events.js";
import { genIntrospect } from "./introspect.js";
import { genTypes } from "./types.js";
import { genVisitors } from "./visitors.js";

export interface GenerateOptions {
  /** Configuration symbols that 'if' conditions test; none by default. */
  readonly defined: ReadonlySet<string>;
}

/** The generated files, by name. */
export function generateFiles(schema: Schema, opts: GenerateOptions): Map<string, string> {
  const ctx = new GenContext(schema, opts.defined);
  return new Map([
    ["types.ts", genTypes(ctx)],
    ["visitors.ts", genVisitors(ctx)],
    ["commands.ts", genCommands(ctx)],
    ["events.ts", genEvents(ctx)],
    ["introspect.ts", genIntrospect(ctx)],
  ]);
}

export async function generate(schema: Schema, dir: string, opts: GenerateOptions): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of generateFiles(schema, opts)) {
    const file = path.join(dir, name);
    const old = await readFile(file, "utf8").catch(() => null);
    if (old !== text) await writeFile(file, text);
  }
}
