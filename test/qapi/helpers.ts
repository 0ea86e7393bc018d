// Shared helpers for the QAPI tests: write schema files into a fresh
// temporary directory and load them.

import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Schema } from "../../src/qapi/model.js";
import { QapiError } from "../../src/qapi/source.js";

/** Writes FILES (name -> text) into a new temporary directory; returns it. */
export function writeSchemaFiles(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "minivm-qapi-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

/**
 * Loads main.json from FILES and returns the error message, with the
 * temporary directory removed from file names; null when the schema is valid.
 */
export function schemaError(files: Record<string, string>): string | null {
  const dir = writeSchemaFiles(files);
  try {
    Schema.load(path.join(dir, "main.json"));
    return null;
  } catch (err) {
    if (!(err instanceof QapiError)) throw err;
    return err.message.split(dir + path.sep).join("");
  }
}

/**
 * Generates the code for SCHEMA_FILE into a temporary copy of the source
 * layout the generated modules import from (src/qapi/runtime.ts and
 * src/qmp/errors.ts), so a test schema's validators can be imported and run.
 */
export async function generateIntoTemp(schemaFile: string, defined: string[] = []): Promise<string> {
  const { copyFileSync } = await import("node:fs");
  const { generateFiles } = await import("../../src/qapi/gen/generate.js");
  const root = mkdtempSync(path.join(tmpdir(), "minivm-qapi-gen-"));
  const repo = path.resolve(import.meta.dirname, "../..");
  mkdirSync(path.join(root, "src/qapi/generated"), { recursive: true });
  mkdirSync(path.join(root, "src/qmp"), { recursive: true });
  copyFileSync(path.join(repo, "src/qapi/runtime.ts"), path.join(root, "src/qapi/runtime.ts"));
  copyFileSync(path.join(repo, "src/qmp/errors.ts"), path.join(root, "src/qmp/errors.ts"));
  const files = generateFiles(Schema.load(schemaFile), { defined: new Set(defined) });
  for (const [name, text] of files) writeFileSync(path.join(root, "src/qapi/generated", name), text);
  return path.join(root, "src/qapi/generated");
}
