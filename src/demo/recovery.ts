// `minivm demo recovery`: the link breaks in postcopy (docs/migration.md). Neither side has the
// whole guest, so neither may give up: both pause in postcopy-paused, the destination's vCPU
// waits on a missing page holding the big lock (in-band QMP there queues, out-of-band answers),
// and migrate-recover on the destination plus `migrate resume=true` on the source finish the
// migration without losing a page.

import { join } from "node:path";
import type { Demo } from "./session.js";
import { checkGuest } from "./precopy.js";
import { faultFigures, startPostcopyPair, switchToPostcopy, watchPostcopy } from "./postcopy.js";

export async function recoveryDemo(d: Demo): Promise<void> {
  d.say("In postcopy the guest's RAM is split: pages the destination has received, and pages only the");
  d.say("source has. If the link breaks now, neither side can carry on or give up, so both pause and");
  d.say("wait for a new link. The destination's vCPU, stuck on a page that cannot come, holds the big");
  d.say("lock all that time: only out-of-band commands get through to it.");

  const p = await startPostcopyPair(d);
  // So slow that postcopy is still running when the link is cut.
  await switchToPostcopy(
    d,
    p,
    64 * 1024,
    "Then, at once, we cut the link: `migrate-pause` out of band on the source shuts the migration\n" +
      'channel down, as a broken network would (`yank` with `{"type": "migration"}` does the same). It is\n' +
      "allow-oob, so it works even when the main loop cannot.",
  );
  await watchPostcopy(d, p.sq, (i) => i.status === "postcopy-active");
  await p.sq.send({ "exec-oob": "migrate-pause", id: "cut" });
  await watchPostcopy(d, p.sq, (i) => i.status === "postcopy-paused");
  await p.dq.event("MIGRATION", { status: "postcopy-paused" });
  d.say("Both sides are in postcopy-paused. The source keeps every page it has not sent; the destination");
  d.say("keeps running the guest until it touches a page it does not have.");

  await d.step(
    "the destination is stuck, but answers out of band",
    "An in-band `query-status` to the destination gets no reply: its vCPU waits for a page holding the\n" +
      "big lock. `x-query-bql` out of band (the monitor thread answers it without the lock) shows who holds it.",
  );
  // Quietly until the vCPU has sat on the lock a moment (the guest touches a missing page within
  // a second of the cut), so that what is shown is the stuck state and not the instant before it.
  for (;;) {
    const bql = await p.dq.quiet("x-query-bql", true);
    if (bql.holder === "vcpu0" && typeof bql["held-ns"] === "number" && bql["held-ns"] > 200e6) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const queued = p.dq.post({ execute: "query-status", id: "stuck" });
  let answered = false;
  void queued.then(() => (answered = true));
  await p.dq.send({ "exec-oob": "x-query-bql", id: "who-holds-it" });
  if (answered) throw new Error("the destination answered in-band while its vCPU waited for a page");
  d.say("  (no reply to `stuck`: vcpu0 holds the lock, waiting for a page on a link that is gone)");

  await d.step(
    "migrate-recover on the destination, out of band",
    "The destination listens for a new channel. It must be out of band: in-band, this command would\n" +
      "queue behind the very lock that only the recovered migration can release.",
  );
  const again = `unix:${join(d.dir, "dst-recover.sock")}`;
  await p.dq.send({ "exec-oob": "migrate-recover", arguments: { uri: again }, id: "recover" });

  await d.step(
    "migrate resume=true on the source",
    "The source connects to the new address, asks which pages the destination already has (its received\n" +
      "bitmap), and carries on from there; the background push is unthrottled now so it finishes.",
  );
  await p.sq.send({ execute: "migrate-set-parameters", arguments: { "max-postcopy-bandwidth": 0 } });
  await p.sq.send({ execute: "migrate", arguments: { uri: again, resume: true } });
  const done = await watchPostcopy(d, p.sq, () => false);
  if (done.status !== "completed") throw new Error(`migration ${done.status ?? "?"}: ${done["error-desc"] ?? ""}`);
  await p.dq.event("MIGRATION", { status: "postcopy-recover" });
  await p.dq.event("MIGRATION", { status: "completed" });
  await queued;
  d.say("The page came, the vCPU let the lock go, and `stuck` got its answer at last.");
  await faultFigures(d, p.dq);
  d.say("The max is the fault that sat through the break: that page waited for the new link.");

  await d.step("check on the destination", "A key stops `dirty`; `check` reads every page's counter and address.");
  await checkGuest(d, p.dst);
  d.say("Zero pages lost: the link broke in the middle of postcopy and the guest never noticed more than a wait.");
}
