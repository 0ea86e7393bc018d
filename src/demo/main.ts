// `minivm demo [NAME]`: narrated scenarios for a class. Each demo starts the `minivm run`
// processes it needs, shows every QMP message, pauses for Enter between steps unless
// --non-interactive, and removes its processes and files on exit and on Ctrl-C.

import { Demo, type DemoOptions } from "./session.js";

interface DemoEntry {
  name: string;
  summary: string;
  run: (d: Demo) => Promise<void>;
}

const DEMOS: DemoEntry[] = [
  { name: "oob", summary: "the big lock, a stuck in-band command, and the out-of-band escape", run: async (d) => (await import("./oob.js")).oobDemo(d) },
  { name: "histogram", summary: "block latency histograms: set the bin edges, write from the guest, read the bins", run: async (d) => (await import("./histogram.js")).histogramDemo(d) },
  { name: "precopy", summary: "live migration: passes that converge, then a guest too fast for the link until auto-converge", run: async (d) => (await import("./precopy.js")).precopyDemo(d) },
  { name: "postcopy", summary: "switch over: the destination runs at once and faults its missing pages in", run: async (d) => (await import("./postcopy.js")).postcopyDemo(d) },
  { name: "recovery", summary: "cut the link in postcopy, both sides paused, migrate-recover and resume, no page lost", run: async (d) => (await import("./recovery.js")).recoveryDemo(d) },
];

export function listDemos(out: (text: string) => void): void {
  out("minivm demo NAME [--non-interactive] [--dashboard]\n\n");
  for (const e of DEMOS) out(`  ${e.name.padEnd(10)} ${e.summary}\n`);
  out("\ndocs/demos.md explains each one.\n");
}

export async function demoMain(name: string | undefined, opts: DemoOptions): Promise<number> {
  if (name === undefined) {
    listDemos(opts.out);
    return 0;
  }
  const entry = DEMOS.find((e) => e.name === name);
  if (entry === undefined) {
    process.stderr.write(`minivm demo: no demo '${name}'\n`);
    listDemos((t) => process.stderr.write(t));
    return 1;
  }
  const demo = new Demo(opts);
  // Ctrl-C (and a terminal closing) ends the demo's processes and files too.
  const onSignal = (signal: NodeJS.Signals): void => {
    void demo.cleanup().finally(() => process.kill(process.pid, signal));
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.once(s, onSignal);
  try {
    await entry.run(demo);
    opts.out(`\nThe ${name} demo is over.\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`minivm demo ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
    // A VM that went away mid-demo says why on its stderr.
    const ended = demo.endedVms();
    if (ended !== "") process.stderr.write(ended + "\n");
    return 1;
  } finally {
    await demo.cleanup();
    for (const s of signals) process.off(s, onSignal);
  }
}
