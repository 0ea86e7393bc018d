// `minivm demo postcopy`: switch a migration to postcopy (docs/migration.md). The destination
// runs the guest at once with most of its RAM still on the source; every page it touches that
// has not arrived yet is a fault, asked for over the return path and served before the
// source's background push. `check` on the destination proves no page was lost.

import type { Demo, DemoQmp, DemoVm } from "./session.js";
import { checkGuest, destination, type MigrateInfo } from "./precopy.js";

export interface PostcopyInfo extends MigrateInfo {
  ram?: MigrateInfo["ram"] & { "postcopy-requests"?: number; "postcopy-bytes"?: number; "precopy-bytes"?: number };
  "x-postcopy-faults"?: { faults: number; "p50-us": number; "p99-us": number; "max-us": number; requests: number };
}

export interface PostcopyPair {
  src: DemoVm;
  sq: DemoQmp;
  dst: DemoVm;
  dq: DemoQmp;
  /** Where the destination listens for the migration. */
  uri: string;
}

const caps = (...names: string[]) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });
const MiB = 1024 * 1024;

/**
 * The first two steps of both postcopy demos: a destination and a source with the
 * `postcopy-ram` and `events` capabilities on both sides, and a guest rewriting 16 MiB.
 */
export async function startPostcopyPair(d: Demo): Promise<PostcopyPair> {
  await d.step(
    "start a destination and a source, postcopy allowed on both",
    "The destination waits in `inmigrate` on a unix socket; the source boots the guest. Both need the\n" +
      "`postcopy-ram` capability before the migration starts; `events` makes each send MIGRATION events.\n" +
      "The destination's events matter: while its vCPU waits for a page it holds the big lock, so an\n" +
      "in-band query-migrate there would wait too.",
  );
  const disk = d.diskCopy();
  const dst = await destination(d, "dst", disk);
  await dst.q.send({ execute: "migrate-set-capabilities", arguments: caps("postcopy-ram", "events") });
  const src = await d.startVm("src", disk, 1);
  const sq = await d.qmp("src", src.qmpPaths[0] as string);
  await src.waitFor("minivm$ ");
  await sq.send({ execute: "migrate-set-capabilities", arguments: caps("postcopy-ram", "events") });

  await d.step("the guest dirties memory", "`dirty 16 16` rewrites a counter in each of 4096 pages (16 MiB) at 16 MiB/s, until a key is pressed.");
  await d.guest(src, "dirty 16 16", "until a key is pressed");
  return { src, sq, dst: dst.vm, dq: dst.q, uri: dst.uri };
}

/**
 * Starts a slow precopy (the guest dirties faster than it sends, so it waits for the switch however
 * long the class takes) and switches it to postcopy; returns when the destination runs. Postcopy
 * itself may finish in seconds, so whatever follows the switch belongs in `then`, the same step:
 * no pause between the switch and it.
 */
export async function switchToPostcopy(d: Demo, p: PostcopyPair, postcopyBandwidth: number, then: string): Promise<void> {
  await d.step(
    "start a slow precopy",
    `max-bandwidth ${4} MiB/s keeps most of the guest's 128 MiB on the source for a while; max-postcopy-bandwidth\n` +
      `${postcopyBandwidth >= MiB ? `${postcopyBandwidth / MiB} MiB/s` : `${postcopyBandwidth / 1024} KiB/s`} throttles the background push after the switch, so postcopy lasts a while.`,
  );
  await p.sq.send({ execute: "migrate-set-parameters", arguments: { "max-bandwidth": 4 * MiB, "max-postcopy-bandwidth": postcopyBandwidth } });
  await p.sq.send({ execute: "migrate", arguments: { uri: p.uri } });
  let i = (await p.sq.quiet("query-migrate")) as PostcopyInfo;
  while (i.status === "setup") {
    await new Promise((r) => setTimeout(r, 50));
    i = (await p.sq.quiet("query-migrate")) as PostcopyInfo;
  }
  await p.sq.send({ execute: "query-migrate" });

  await d.step(
    "switch over: migrate-start-postcopy",
    "The source stops the guest, sends the devices and the list of pages it still has, and tells the\n" +
      "destination to run. From now on the newest copy of each page the destination has is the only one.\n" +
      then,
  );
  await p.sq.send({ execute: "migrate-start-postcopy" });
  await p.dq.event("MIGRATION", { status: "postcopy-active" });
  d.say("The destination runs the guest now, with most of its RAM missing.");
}

/** One line of the source's progress in postcopy. */
function progress(i: PostcopyInfo): string {
  const r = i.ram;
  return (
    `  query-migrate: ${i.status ?? "?"}` +
    (r === undefined ? "" : `, ${(r.transferred / MiB).toFixed(1)} MiB sent, ${(r.remaining / MiB).toFixed(1)} MiB left, ${r["postcopy-requests"] ?? 0} page requests served`)
  );
}

/** Polls the source quietly, a line every half second and on each change of status, until `stop`. */
export async function watchPostcopy(d: Demo, q: DemoQmp, stop: (i: PostcopyInfo) => boolean): Promise<PostcopyInfo> {
  let lastStatus = "";
  let lastAt = 0;
  for (;;) {
    const i = (await q.quiet("query-migrate")) as PostcopyInfo;
    const now = Date.now();
    if (i.status !== lastStatus || now - lastAt >= 500) {
      d.say(progress(i));
      lastStatus = i.status ?? "";
      lastAt = now;
    }
    if (i.status === "completed" || i.status === "failed" || i.status === "cancelled" || stop(i)) return i;
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** The destination's fault figures, from its query-migrate (in-band: it answers once the guest has its pages). */
export async function faultFigures(d: Demo, dq: DemoQmp): Promise<void> {
  const info = (await dq.send({ execute: "query-migrate" })) as PostcopyInfo;
  const f = info["x-postcopy-faults"];
  if (f === undefined) throw new Error("the destination's query-migrate has no x-postcopy-faults");
  d.say(`  fault latency on dst: ${f.faults} faults, p50 ${f["p50-us"]} µs, p99 ${f["p99-us"]} µs, max ${f["max-us"]} µs (${f.requests} pages requested)`);
}

export async function postcopyDemo(d: Demo): Promise<void> {
  d.say("Postcopy turns migration around: instead of copying RAM until the rest is small enough, the");
  d.say("source stops the guest early and the destination runs it at once. A page the guest touches");
  d.say("that has not arrived is a page fault: the destination's vCPU waits while it asks the source for");
  d.say("that page over the return path, and the source sends it ahead of everything else.");

  const p = await startPostcopyPair(d);
  await switchToPostcopy(
    d,
    p,
    4 * MiB,
    "Then the source pushes the remaining pages in the background and serves the destination's page\n" +
      "requests first; query-migrate on the source counts them (polled, a line every half second).",
  );
  const done = await watchPostcopy(d, p.sq, () => false);
  if (done.status !== "completed") throw new Error(`migration ${done.status ?? "?"}: ${done["error-desc"] ?? ""}`);
  await p.dq.event("MIGRATION", { status: "completed" });
  await p.sq.send({ execute: "query-migrate" });
  if ((done.ram?.["postcopy-requests"] ?? 0) === 0) throw new Error("the destination asked for no page: it took no fault");

  await d.step(
    "how long the guest waited",
    "The destination timed every fault, from the vCPU touching the missing page until the page arrived\n" +
      "and the vCPU woke (minivm's x-postcopy-faults; QEMU reports postcopy-blocktime instead).",
  );
  await faultFigures(d, p.dq);

  await d.step("check on the destination", "A key stops `dirty`; `check` reads every page's counter and address.");
  await checkGuest(d, p.dst);
  d.say("No page lost: every counter is where the sweep left it, on a guest that ran while its RAM arrived.");
}
