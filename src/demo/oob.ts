// `minivm demo oob`: the big lock held by a stuck in-band command, and an out-of-band command
// that answers anyway because OOB handlers never take the lock (docs/oob-and-the-bql.md).

import type { Demo } from "./session.js";

export async function oobDemo(d: Demo): Promise<void> {
  d.say("The big lock (BQL) serialises the guest's vCPU and every in-band QMP command. An");
  d.say("out-of-band (OOB) command runs on the monitor thread at once, without that lock, so it");
  d.say("still answers while the lock is stuck. Two QMP clients will show it.");

  await d.step("start a VM with two QMP monitors", "One `minivm run` process, booting a copy of the teaching disk, with two unix QMP sockets.");
  const vm = await d.startVm("vm", d.diskCopy(), 2);
  const [pathA, pathB] = vm.qmpPaths as [string, string];

  await d.step("connect both clients with the oob capability", "Each client reads the greeting and asks for `oob` in qmp_capabilities.");
  const a = await d.qmp("A", pathA);
  const b = await d.qmp("B", pathB);

  await d.step(
    "client A wedges the main loop",
    "`x-oob-test lock=true` is in-band: it runs under the BQL and does not give the lock back until\n" +
      "someone says so. Its reply will not come now, and A's next in-band command queues behind it.",
  );
  const stuck = a.post({ execute: "x-oob-test", arguments: { lock: true }, id: "stuck" });
  const waits = a.post({ execute: "query-status", id: "waits" });
  // The request reaches the core thread a moment later; ask (quietly) until it holds the lock,
  // so that what B is shown next is the stuck state and not the instant before it.
  for (;;) {
    const info = await b.quiet("x-query-bql", true);
    if (typeof info.holder === "string") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  d.say("  (no reply: the lock is held)");

  await d.step(
    "client B asks, out of band, who holds the lock",
    "`exec-oob` instead of `execute`: the monitor thread answers this itself, without the BQL.",
  );
  await b.send({ "exec-oob": "x-query-bql", id: "who-holds-it" });

  await d.step("client B releases the lock out of band", "`x-oob-test lock=false` as OOB lets the stuck command finish; then A's replies arrive.");
  await b.send({ "exec-oob": "x-oob-test", arguments: { lock: false }, id: "release" });
  await stuck;
  await waits;

  d.say("");
  d.say("The OOB replies overtook the in-band ones: `who-holds-it` and `release` were answered while");
  d.say("`stuck` and `waits` were still waiting for the big lock.");
}
