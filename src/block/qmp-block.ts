// The block QMP commands (QEMU's blockdev.c, block/qapi.c, block/qapi-sysemu.c handlers), in
// QEMU 7.2's words, over the node graph and backends that blockdev.ts keeps.

import type { QmpHandlers } from "../qapi/generated/commands.js";
import type { BlockInfo, BlockStats } from "../qapi/generated/types.js";
import { genericError } from "../qmp/errors.js";
import type { BlockLayer } from "./blockdev.js";
import type { BlockDriver } from "./driver.js";
import { blockInfo, blockstatsInfo, namedBlockNodes, nodeBlockstats, setLatencyHistogram } from "./qapi-block.js";

export type BlockHandlers = Pick<
  QmpHandlers,
  "query-block" | "query-blockstats" | "query-named-block-nodes" | "block_resize" | "block-latency-histogram-set" | "blockdev-add" | "blockdev-del"
>;

export function blockHandlers(layer: BlockLayer): BlockHandlers {
  return {
    "query-block": async () => (await Promise.all(layer.backends.map((b) => blockInfo(b)))) as BlockInfo[],
    "query-blockstats": ({ "query-nodes": queryNodes }) =>
      (queryNodes === true ? nodeBlockstats(layer.graph) : layer.backends.map((b) => blockstatsInfo(b))) as BlockStats[],
    "query-named-block-nodes": ({ flat }) => namedBlockNodes(layer.graph, flat === true),
    block_resize: async ({ device, "node-name": nodeName, size }) => {
      const b = layer.backendByName(device, nodeName);
      if (b !== undefined) {
        await b.resize(Number(size));
        // The guest learns the new capacity through a config-change interrupt.
        b.devOps?.resized();
        return {};
      }
      // Only the monitor's own nodes: a drive's inner nodes share their driver with the top one.
      const n = nodeName !== undefined ? layer.graph.get(nodeName) : undefined;
      if (n === undefined || !n.monitorOwned) throw genericError(`Cannot find device='${device ?? ""}' nor node-name='${nodeName ?? ""}'`);
      const resizable = n.drv as BlockDriver & { truncate?: (size: number) => Promise<void> };
      if (resizable.truncate === undefined) throw genericError(`Image format '${n.drv.format}' does not support resizing`);
      await resizable.truncate(Number(size));
      return {};
    },
    "block-latency-histogram-set": (args) => {
      setLatencyHistogram(layer.backendByDevice(args.id), {
        id: args.id,
        boundaries: args.boundaries?.map(Number),
        "boundaries-read": args["boundaries-read"]?.map(Number),
        "boundaries-write": args["boundaries-write"]?.map(Number),
        "boundaries-flush": args["boundaries-flush"]?.map(Number),
      });
      return {};
    },
    "blockdev-add": async (o) => {
      await layer.addNode(o);
      return {};
    },
    "blockdev-del": async ({ "node-name": nodeName }) => {
      await layer.delNode(nodeName);
      return {};
    },
  };
}
