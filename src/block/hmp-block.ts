// HMP `info block` and `info blockstats` text, as QEMU's block/monitor/block-hmp-cmds.c prints
// them from the same query-block / query-blockstats objects.

import type { BlockInfo, BlockStats } from "./qapi-block.js";

export function hmpInfoBlockstats(list: BlockStats[]): string {
  let out = "";
  for (const s of list) {
    if (s.device === undefined) continue;
    const st = s.stats;
    out +=
      `${s.device}: rd_bytes=${st.rd_bytes} wr_bytes=${st.wr_bytes} rd_operations=${st.rd_operations}` +
      ` wr_operations=${st.wr_operations} flush_operations=${st.flush_operations}` +
      ` wr_total_time_ns=${st.wr_total_time_ns} rd_total_time_ns=${st.rd_total_time_ns}` +
      ` flush_total_time_ns=${st.flush_total_time_ns} rd_merged=${st.rd_merged} wr_merged=${st.wr_merged}` +
      ` idle_time_ns=${st.idle_time_ns ?? 0}\n`;
  }
  return out;
}

/** print_block_info for each device (no throttling or detect-zeroes lines: minivm has neither). */
export function hmpInfoBlock(list: BlockInfo[]): string {
  let out = "";
  list.forEach((info, i) => {
    // QEMU separates devices with a blank line; there is none after the last.
    if (i > 0) out += "\n";
    const ins = info.inserted;
    // A device on a -blockdev node has an anonymous backend: QEMU names the node instead.
    if (info.device === "" && ins) out += ins["node-name"];
    else {
      out += info.device;
      if (ins) out += ` (${ins["node-name"]})`;
    }
    out += ins ? `: ${ins.file} (${ins.drv}${ins.ro ? ", read-only" : ""}${ins.encrypted ? ", encrypted" : ""})\n` : ": [not inserted]\n";
    if (info.qdev) out += `    Attached to:      ${info.qdev}\n`;
    if (info["io-status"] && info["io-status"] !== "ok") out += `    I/O status:       ${info["io-status"]}\n`;
    if (!ins) return;
    out += `    Cache mode:       ${ins.cache.writeback ? "writeback" : "writethrough"}${ins.cache.direct ? ", direct" : ""}${ins.cache["no-flush"] ? ", ignore flushes" : ""}\n`;
    if (ins.backing_file !== undefined) out += `    Backing file:     ${ins.backing_file} (chain depth: ${ins.backing_file_depth})\n`;
  });
  return out;
}
