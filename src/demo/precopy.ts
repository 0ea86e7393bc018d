// `minivm demo precopy`: live precopy migration between minivm processes (docs/migration.md).
// First a guest dirtying 16 MiB at 8 MiB/s: the passes shrink and it converges. Then a guest
// dirtying as fast as it can over a 64 MiB/s link: every pass finds it all dirty again, until
// auto-converge throttles the vCPU. `check` on the destination proves no page was lost.

import { join } from "node:path";
import type { Demo, DemoQmp, DemoVm } from "./session.js";

export interface MigrateInfo {
  status?: string;
  "error-desc"?: string;
  "cpu-throttle-percentage"?: number;
  "expected-downtime"?: number;
  downtime?: number;
  ram?: { transferred: number; remaining: number; "dirty-sync-count": number; mbps: number };
}

/**
 * A destination: `--incoming unix:` on the same disk (shared storage, as migration wants).
 * Its socket exists once query-migrate names it; asking first keeps `migrate` from racing it.
 */
export async function destination(d: Demo, name: string, disk: string): Promise<{ vm: DemoVm; q: DemoQmp; uri: string }> {
  const uri = `unix:${join(d.dir, `${name}-mig.sock`)}`;
  const vm = await d.startVm(name, disk, 1, ["--incoming", uri]);
  const q = await d.qmp(name, vm.qmpPaths[0] as string);
  while (!("socket-address" in (await q.quiet("query-migrate")))) await new Promise((r) => setTimeout(r, 20));
  await q.send({ execute: "query-migrate" });
  return { vm, q, uri };
}

/**
 * Polls query-migrate quietly, printing one line per change of pass, until `stop` says so
 * (or the migration ends). Returns the last answer.
 */
async function watch(d: Demo, q: DemoQmp, stop: (i: MigrateInfo) => boolean): Promise<MigrateInfo> {
  let lastLine = "";
  for (;;) {
    const i = (await q.quiet("query-migrate")) as MigrateInfo;
    const r = i.ram;
    const throttle = i["cpu-throttle-percentage"];
    const line =
      `  query-migrate: ${i.status ?? "?"}` +
      (r === undefined ? "" : `, pass ${r["dirty-sync-count"]}, ${(r.transferred / 1048576).toFixed(1)} MiB sent, ${(r.remaining / 1048576).toFixed(1)} MiB left`) +
      (throttle === undefined ? "" : `, vCPU throttled ${throttle}%`);
    const key = `${i.status ?? ""}/${r?.["dirty-sync-count"] ?? ""}/${throttle ?? ""}`;
    if (key !== lastLine) d.say(line);
    lastLine = key;
    if (i.status === "failed" || i.status === "cancelled") return i;
    if (i.status === "completed" || stop(i)) return i;
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** Stops `dirty` on `vm` with a key, then lets the guest check every page's counter. */
export async function checkGuest(d: Demo, vm: DemoVm): Promise<void> {
  d.say(`  (a key stops dirty on ${vm.name})`);
  vm.type("x");
  await vm.waitFor("minivm$ ");
  const out = await d.guest(vm, "check");
  if (!out.includes("check: OK")) throw new Error(`the guest's pages are not intact: ${out}`);
}

export async function precopyDemo(d: Demo): Promise<void> {
  d.say("Precopy migration copies a running guest's RAM to another process while the guest keeps");
  d.say("writing it. Each pass sends the pages dirtied since the last; when what is left fits the");
  d.say("allowed downtime (300 ms), the source stops the guest, sends the rest and the devices, and");
  d.say("the destination runs on.");

  await d.step("start a destination and a source", "The destination waits in `inmigrate` on a unix socket; the source boots the guest.");
  const disk = d.diskCopy();
  const dst = await destination(d, "dst", disk);
  const src = await d.startVm("src", disk, 1);
  const sq = await d.qmp("src", src.qmpPaths[0] as string);
  await src.waitFor("minivm$ ");

  await d.step("the guest dirties memory", "`dirty 16 8` sweeps 16 MiB of counters, one per 4 KiB page, at 8 MiB/s, until a key is pressed.");
  await d.guest(src, "dirty 16 8", "until a key is pressed");

  await d.step("migrate", "`migrate` starts the passes; query-migrate shows each one (polled, one line per pass).");
  await sq.send({ execute: "migrate", arguments: { uri: dst.uri } });
  const done = await watch(d, sq, () => false);
  if (done.status !== "completed") throw new Error(`migration ${done.status ?? "?"}: ${done["error-desc"] ?? ""}`);
  await sq.send({ execute: "query-migrate" });
  d.say("The guest converged: 8 MiB/s of dirtying is far below the link, so the passes shrank.");

  await d.step("check on the destination", "The guest lives on `dst` now, its `dirty` loop still running there.");
  await checkGuest(d, dst.vm);
  const dq = dst.q;

  await d.step(
    "a guest faster than the link",
    "On `dst`, `dirty 32 0` rewrites 32 MiB as fast as it can. We migrate it to a new destination\n" +
      "at max-bandwidth 64 MiB/s: each pass finds everything dirty again, so it never converges.",
  );
  const dst2 = await destination(d, "dst2", disk);
  await d.guest(dst.vm, "dirty 32 0", "until a key is pressed");
  await dq.send({ execute: "migrate-set-parameters", arguments: { "max-bandwidth": 64 * 1024 * 1024, "cpu-throttle-initial": 80, "cpu-throttle-increment": 10 } });
  await dq.send({ execute: "migrate", arguments: { uri: dst2.uri } });
  const stuck = await watch(d, dq, (i) => (i.ram?.["dirty-sync-count"] ?? 0) >= 5);
  if (stuck.status === "completed") throw new Error("the migration converged without auto-converge");
  d.say("Pass after pass and never done. Give up on this one:");
  await dq.send({ execute: "migrate_cancel" });
  await watch(d, dq, (i) => i.status === "cancelled");

  await d.step(
    "auto-converge",
    "With the `auto-converge` capability the source throttles the vCPU (80%, then 10 points more per\n" +
      "round) whenever the guest dirties faster than the link sends, until a pass fits.",
  );
  const dst3 = await destination(d, "dst3", disk);
  await dq.send({ execute: "migrate-set-capabilities", arguments: { capabilities: [{ capability: "auto-converge", state: true }] } });
  await dq.send({ execute: "migrate", arguments: { uri: dst3.uri } });
  const end = await watch(d, dq, () => false);
  if (end.status !== "completed") throw new Error(`migration ${end.status ?? "?"}: ${end["error-desc"] ?? ""}`);
  d.say("Converged: the throttle slowed the guest's writing until the rest fit the downtime.");

  await d.step("check on the last destination", "The guest, twice migrated, checks its counters again.");
  await checkGuest(d, dst3.vm);
}
