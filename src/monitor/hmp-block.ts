// HMP `info block` and `info blockstats`, printed from query-block and query-blockstats the
// way QEMU's hmp_info_block / hmp_info_blockstats print them.
import type { BlockInfo, BlockStats } from "../qapi/generated/types.js";

export function formatInfoBlock(blocks: BlockInfo[]): string {
  let out = "";
  blocks.forEach((b, i) => {
    if (i > 0) out += "\n";
    const ins = b.inserted;
    if (ins === undefined) {
      out += `${b.device}: [not inserted]\n`;
    } else {
      out += `${b.device} (${ins["node-name"] ?? ""}): ${ins.file} (${ins.drv}${ins.ro ? ", read-only" : ""})\n`;
    }
    if (b.qdev !== undefined) out += `    Attached to:      ${b.qdev}\n`;
    if (ins !== undefined) {
      out += `    Cache mode:       ${ins.cache.writeback ? "writeback" : "writethrough"}${ins.cache.direct ? ", direct" : ""}${ins.cache["no-flush"] ? ", ignore flushes" : ""}\n`;
      if (ins.backing_file !== undefined) out += `    Backing file:     ${ins.backing_file} (chain depth: ${ins.backing_file_depth})\n`;
    }
  });
  return out;
}

export function formatInfoBlockstats(stats: BlockStats[]): string {
  return stats
    .map((s) => {
      const d = s.stats;
      const name = s.device !== undefined && s.device !== "" ? s.device : (s.qdev ?? s["node-name"] ?? "");
      return (
        `${name}: rd_bytes=${d.rd_bytes} wr_bytes=${d.wr_bytes} rd_operations=${d.rd_operations} wr_operations=${d.wr_operations}` +
        ` flush_operations=${d.flush_operations} wr_total_time_ns=${d.wr_total_time_ns} rd_total_time_ns=${d.rd_total_time_ns}` +
        ` flush_total_time_ns=${d.flush_total_time_ns} rd_merged=${d.rd_merged} wr_merged=${d.wr_merged} idle_time_ns=${d.idle_time_ns ?? 0}\n`
      );
    })
    .join("");
}
