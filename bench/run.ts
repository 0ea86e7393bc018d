// `npm run bench [suite...]`: runs each benchmark suite (every other module in bench/) as its
// own process, so one suite's threads and heap cannot disturb another's, and collects the
// JSON each prints on stdout into bench/results/<suite>.json.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "../..");
const wanted = process.argv.slice(2);
const suites = readdirSync(here)
  .filter((f) => f.endsWith(".js") && f !== "run.js" && !f.startsWith("_"))
  .map((f) => f.slice(0, -3))
  .filter((s) => wanted.length === 0 || wanted.includes(s))
  .sort();

mkdirSync(join(repo, "bench/results"), { recursive: true });
let failed = 0;
for (const suite of suites) {
  process.stderr.write(`== bench ${suite}\n`);
  const r = spawnSync(process.execPath, [join(here, `${suite}.js`)], { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 << 20 });
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`bench ${suite} failed with status ${r.status}\n`);
    continue;
  }
  writeFileSync(join(repo, "bench/results", `${suite}.json`), r.stdout);
}
process.exitCode = failed === 0 ? 0 : 1;
