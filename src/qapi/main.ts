// The QAPI toolchain's command line: check a schema, print its introspection,
// or generate minivm's TypeScript from it. `minivm qapi ...` calls qapiMain;
// `npm run qapi` runs this file directly.

import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { generate } from "./gen/generate.js";
import { introspect } from "./introspect.js";
import { Schema } from "./model.js";
import { QapiError } from "./source.js";

const USAGE = `usage: qapi check FILE
       qapi introspect FILE [--unmask] [--define SYMBOL]...
       qapi generate FILE --output-dir DIR [--define SYMBOL]...
`;

interface Args {
  readonly command: string;
  readonly file: string;
  readonly unmask: boolean;
  readonly outputDir: string | null;
  readonly defined: Set<string>;
}

function parseArgs(argv: string[]): Args | string {
  const [command, ...rest] = argv;
  if (command !== "check" && command !== "introspect" && command !== "generate") {
    return command === undefined ? "missing command" : `unknown command '${command}'`;
  }
  let file: string | null = null;
  let unmask = false;
  let outputDir: string | null = null;
  const defined = new Set<string>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const value = (): string => {
      const v = rest[++i];
      if (v === undefined) throw new UsageError(`option ${a} needs a value`);
      return v;
    };
    if (a === "--unmask" || a === "-u") unmask = true;
    else if (a === "--output-dir" || a === "-o") outputDir = value();
    else if (a.startsWith("--output-dir=")) outputDir = a.slice("--output-dir=".length);
    else if (a === "--define" || a === "-D") defined.add(value());
    else if (a.startsWith("-")) return `unknown option '${a}'`;
    else if (file === null) file = a;
    else return `unexpected argument '${a}'`;
  }
  if (file === null) return "missing schema FILE";
  if (command === "generate" && outputDir === null) return "generate needs --output-dir DIR";
  return { command, file, unmask, outputDir, defined };
}

class UsageError extends Error {}

/** Runs a qapi sub-command; resolves to the process exit status. */
export async function qapiMain(argv: string[]): Promise<number> {
  if (argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  let args: Args | string;
  try {
    args = parseArgs(argv);
  } catch (err) {
    args = err instanceof UsageError ? err.message : String(err);
  }
  if (typeof args === "string") {
    process.stderr.write(`qapi: ${args}\n${USAGE}`);
    return 2;
  }
  try {
    const schema = Schema.load(args.file);
    if (args.command === "introspect") {
      const entries = introspect(schema, { unmask: args.unmask, defined: args.defined });
      process.stdout.write(JSON.stringify(entries.map((e) => e.value), null, 2) + "\n");
    } else if (args.command === "generate") {
      await generate(schema, args.outputDir!, { defined: args.defined });
    }
    return 0;
  } catch (err) {
    if (err instanceof QapiError) {
      process.stderr.write(err.message + "\n");
      return 1;
    }
    throw err;
  }
}

function isEntryScript(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryScript()) {
  qapiMain(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`qapi: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
