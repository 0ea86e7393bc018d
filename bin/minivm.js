#!/usr/bin/env node
// Entry point for `npx minivm`. The TypeScript sources are compiled to dist/ by `npm ci` (the
// `prepare` script); this file stays plain JavaScript so that start-up pays for no loader.
import { main } from "../dist/src/cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === "number") process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`minivm: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
