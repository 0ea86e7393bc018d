// Shared helpers for the QAPI tests: write schema files into a fresh
// temporary directory and load them.

import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Schema } from "../../src/qapi/model.js";
import { QapiError } from "../../src/qapi/source.js";

const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Removes the temporary directories the helpers made; call from afterAll. */
export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Writes FILES (name -> text) into a new temporary directory; returns it. */
export function writeSchemaFiles(files: Record<string, string>): string {
  const dir = tempDir("minivm-qapi-");
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
 * layout the generated modules import from (the visitor runtime and what it
 * imports), so a test schema's validators can be imported and run.
 */
export async function generateIntoTemp(schemaFile: string, defined: string[] = []): Promise<string> {
  const { copyFileSync } = await import("node:fs");
  const { generateFiles } = await import("../../src/qapi/gen/generate.js");
  const root = tempDir("minivm-qapi-gen-");
  const repo = path.resolve(import.meta.dirname, "../..");
  mkdirSync(path.join(root, "src/qapi/generated"), { recursive: true });
  for (const f of ["src/qapi/runtime.ts", "src/qapi/ghash.ts", "src/qapi/error.ts", "src/qapi/qdict-order.ts"]) {
    copyFileSync(path.join(repo, f), path.join(root, f));
  }
  const files = generateFiles(Schema.load(schemaFile), { defined: new Set(defined) });
  for (const [name, text] of files) writeFileSync(path.join(root, "src/qapi/generated", name), text);
  return path.join(root, "src/qapi/generated");
}
