// `minivm demo histogram`: QEMU's block-latency-histogram-set on the teaching disk, guest
// writes, and the bins read back with query-blockstats (docs/block-latency-histograms.md).

import type { Demo } from "./session.js";

/** The teaching disk's virtio-blk device has no id=, so it is named by its QOM path. */
const DEVICE = "/machine/peripheral-anon/device[0]";

interface Histogram {
  boundaries: number[];
  bins: number[];
}
interface BlockStats {
  qdev?: string;
  stats: { wr_operations: number; wr_latency_histogram?: Histogram };
}

export async function histogramDemo(d: Demo): Promise<void> {
  d.say("minivm times every block request. A latency histogram counts them into bins whose edges");
  d.say("you choose (in nanoseconds), as QEMU's block-latency-histogram-set does.");

  await d.step("start a VM on a copy of the teaching disk", "Its guest boots to the `minivm$` prompt.");
  const vm = await d.startVm("vm", d.diskCopy(), 1);
  const q = await d.qmp("QMP", vm.qmpPaths[0] as string);
  await vm.waitFor("minivm$ ");

  await d.step(
    "set the bin edges",
    "Edges 10 µs, 100 µs, 1 ms and 10 ms make five bins: below 10 µs, 10-100 µs, ... and 10 ms or more.\n" +
      `The id is the device: the disk's virtio-blk at ${DEVICE}.`,
  );
  await q.send({ execute: "block-latency-histogram-set", arguments: { id: DEVICE, boundaries: [10000, 100000, 1000000, 10000000] } });

  await d.step("write from the guest", "`disk write 2` fills the disk's 2 MiB data partition with a pattern, through the virtio-blk driver.");
  await d.guest(vm, "disk write 2");

  await d.step("read the bins", "query-blockstats: `wr_latency_histogram.bins` counts the guest's writes per bin.");
  const stats = (await q.send({ execute: "query-blockstats" })) as BlockStats[];
  const dev = stats.find((s) => s.qdev === DEVICE) ?? stats[0];
  const h = dev?.stats.wr_latency_histogram;
  if (dev === undefined || h === undefined) throw new Error("query-blockstats shows no write histogram");
  const edges = ["0", ...h.boundaries.map(ns)];
  d.say("");
  h.bins.forEach((n, i) => {
    const label = i < h.boundaries.length ? `${edges[i] ?? ""} .. ${edges[i + 1] ?? ""}` : `${edges[i] ?? ""} and more`;
    d.say(`  write latency ${label.padEnd(18)} ${String(n).padStart(6)}  ${"#".repeat(Math.min(50, n))}`);
  });
  d.say(`  histogram total: ${h.bins.reduce((a, b) => a + b, 0)} writes (wr_operations ${dev.stats.wr_operations})`);
  d.say("");
  d.say("The bins add up to wr_operations: every write the guest made fell in exactly one bin.");
}

function ns(v: number): string {
  return v >= 1e6 ? `${v / 1e6} ms` : v >= 1e3 ? `${v / 1e3} µs` : `${v} ns`;
}
