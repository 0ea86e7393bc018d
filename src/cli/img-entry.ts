// Runs `minivm img ...` without the rest of the CLI: `node dist/src/cli/img-entry.js info x.qcow2`.
// The benchmark and the kill -9 test use it to start a process that does block I/O only.
import { imgMain } from "./img.js";

imgMain(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`minivm img: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
