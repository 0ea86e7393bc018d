// ImageInfo and ImageCheck (qapi/block-core.json) built from an open image, in the member
// order QEMU 7.2's qemu-img prints them, plus qemu-img's human renderings of both.

import { dirname, isAbsolute, join } from "node:path";
import type { BlockDriver, Qcow2Specific } from "./driver.js";
import type { Qcow2Snapshot } from "./qcow2-format.js";
import type { CheckResult } from "./qcow2-check.js";

/** SnapshotInfo, in qemu-img 7.2's member order. */
export interface SnapshotInfo {
  icount?: number;
  "vm-clock-nsec": number;
  name: string;
  "date-sec": number;
  "date-nsec": number;
  "vm-clock-sec": number;
  id: string;
  "vm-state-size": number;
}

export interface ImageInfo {
  snapshots?: SnapshotInfo[];
  "backing-filename-format"?: string;
  "virtual-size": number;
  filename: string;
  "cluster-size"?: number;
  format: string;
  "actual-size"?: number;
  "format-specific"?: { type: "qcow2"; data: Qcow2Specific };
  "full-backing-filename"?: string;
  "backing-filename"?: string;
  "dirty-flag"?: boolean;
  "backing-image"?: ImageInfo;
}

/** QEMU's path_combine for display: relative names join the overlay's directory as given. */
export function fullBackingName(filename: string, backing: string): string {
  if (isAbsolute(backing) || /^[a-z]+:/.test(backing)) return backing;
  const dir = dirname(filename);
  return dir === "." ? backing : join(dir, backing);
}

export async function imageInfo(d: BlockDriver, filename: string = d.filename, withBackingImage = false): Promise<ImageInfo> {
  const info: ImageInfo = {} as ImageInfo;
  const snaps = (d as BlockDriver & { snapshots?: Qcow2Snapshot[] }).snapshots ?? [];
  if (snaps.length) {
    info.snapshots = snaps.map((sn) => {
      const o: SnapshotInfo = {} as SnapshotInfo;
      if (sn.icount !== -1) o.icount = sn.icount;
      Object.assign(o, {
        "vm-clock-nsec": sn.vmClockNsec % 1e9,
        name: sn.name,
        "date-sec": sn.dateSec,
        "date-nsec": sn.dateNsec,
        "vm-clock-sec": Math.floor(sn.vmClockNsec / 1e9),
        id: sn.id,
        "vm-state-size": sn.vmStateSize,
      });
      return o;
    });
  }
  if (d.backingFilename !== undefined && d.backingFormat !== undefined) info["backing-filename-format"] = d.backingFormat;
  info["virtual-size"] = d.size;
  info.filename = filename;
  if (d.clusterSize !== undefined) info["cluster-size"] = d.clusterSize;
  info.format = d.format;
  info["actual-size"] = await d.actualSize();
  const spec = d.formatSpecific();
  if (spec) info["format-specific"] = { type: "qcow2", data: spec };
  if (d.backingFilename !== undefined) {
    info["full-backing-filename"] = fullBackingName(filename, d.backingFilename);
    info["backing-filename"] = d.backingFilename;
  }
  info["dirty-flag"] = d.dirty();
  if (withBackingImage && d.backing) info["backing-image"] = await imageInfo(d.backing, d.backing.filename, true);
  return info;
}

/** QEMU's size_to_str: three significant digits, binary units. */
export function sizeToStr(v: number): string {
  const units = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
  const x = v / (1000 / 1024);
  const e = x === 0 ? 0 : Math.floor(Math.log2(x)) + 1;
  const i = Math.max(0, Math.trunc((e - 1) / 10));
  const n = v / 2 ** (10 * i);
  return `${Number(n.toPrecision(3))} ${units[i]}B`;
}

export function humanInfo(info: ImageInfo): string {
  const lines = [`image: ${info.filename}`, `file format: ${info.format}`, `virtual size: ${sizeToStr(info["virtual-size"])} (${info["virtual-size"]} bytes)`];
  lines.push(`disk size: ${info["actual-size"] === undefined ? "unavailable" : sizeToStr(info["actual-size"])}`);
  if (info["cluster-size"] !== undefined) lines.push(`cluster_size: ${info["cluster-size"]}`);
  if (info["dirty-flag"]) lines.push("cleanly shut down: no");
  if (info["backing-filename"] !== undefined) {
    const full = info["full-backing-filename"];
    lines.push(full && full !== info["backing-filename"] ? `backing file: ${info["backing-filename"]} (actual path: ${full})` : `backing file: ${info["backing-filename"]}`);
    if (info["backing-filename-format"]) lines.push(`backing file format: ${info["backing-filename-format"]}`);
  }
  if (info.snapshots?.length) {
    // bdrv_snapshot_dump's columns
    lines.push("Snapshot list:", `${"ID".padEnd(10)}${"TAG".padEnd(17)}${"VM SIZE".padStart(8)}${"DATE".padStart(20)}${"VM CLOCK".padStart(13)}${"ICOUNT".padStart(11)}`);
    for (const sn of info.snapshots) {
      const dt = new Date(sn["date-sec"] * 1000);
      const p2 = (n: number): string => String(n).padStart(2, "0");
      const date = `${dt.getFullYear()}-${p2(dt.getMonth() + 1)}-${p2(dt.getDate())} ${p2(dt.getHours())}:${p2(dt.getMinutes())}:${p2(dt.getSeconds())}`;
      const secs = sn["vm-clock-sec"];
      const clock = `${p2(Math.floor(secs / 3600))}:${p2(Math.floor(secs / 60) % 60)}:${p2(secs % 60)}.${String(Math.floor(sn["vm-clock-nsec"] / 1e6) % 1000).padStart(3, "0")}`;
      lines.push(`${sn.id.padEnd(9)} ${sn.name.padEnd(16)} ${sizeToStr(sn["vm-state-size"]).padStart(8)}${date.padStart(20)}${clock.padStart(13)}${(sn.icount !== undefined ? String(sn.icount) : "").padStart(11)}`);
    }
  }
  const spec = info["format-specific"];
  if (spec) {
    lines.push("Format specific information:");
    const d = spec.data;
    lines.push(`    compat: ${d.compat}`, `    compression type: ${d["compression-type"]}`);
    if (d["lazy-refcounts"] !== undefined) lines.push(`    lazy refcounts: ${d["lazy-refcounts"]}`);
    lines.push(`    refcount bits: ${d["refcount-bits"]}`);
    if (d.corrupt !== undefined) lines.push(`    corrupt: ${d.corrupt}`);
    if (d["extended-l2"] !== undefined) lines.push(`    extended l2: ${d["extended-l2"]}`);
  }
  return lines.join("\n") + "\n";
}

/** ImageCheck in the member order qemu-img 7.2 prints (its QDict order); counters only when non-zero. */
export function checkJson(filename: string, format: string, r: CheckResult): Record<string, string | number> {
  const o: Record<string, string | number> = {};
  if (r.imageEndOffset) o["image-end-offset"] = r.imageEndOffset;
  if (r.compressedClusters) o["compressed-clusters"] = r.compressedClusters;
  if (r.totalClusters) o["total-clusters"] = r.totalClusters;
  if (r.corruptions) o.corruptions = r.corruptions;
  if (r.corruptionsFixed) o["corruptions-fixed"] = r.corruptionsFixed;
  o["check-errors"] = r.checkErrors;
  if (r.leaks) o.leaks = r.leaks;
  if (r.leaksFixed) o["leaks-fixed"] = r.leaksFixed;
  if (r.allocatedClusters) o["allocated-clusters"] = r.allocatedClusters;
  o.filename = filename;
  o.format = format;
  if (r.fragmentedClusters) o["fragmented-clusters"] = r.fragmentedClusters;
  return o;
}

/** qemu-img's dump_human_image_check. */
export function humanCheck(r: CheckResult): string {
  let s = "";
  if (r.corruptions === 0 && r.leaks === 0 && r.checkErrors === 0) s += "No errors were found on the image.\n";
  else {
    if (r.corruptions) s += `\n${r.corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`;
    if (r.leaks) s += `\n${r.leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n`;
    if (r.checkErrors) s += `\n${r.checkErrors} internal errors have occurred during the check.\n`;
  }
  if (r.totalClusters !== 0 && r.allocatedClusters !== 0) {
    const pct = (a: number, b: number): string => ((a * 100) / b).toFixed(2);
    s += `${r.allocatedClusters}/${r.totalClusters} = ${pct(r.allocatedClusters, r.totalClusters)}% allocated, ${pct(r.fragmentedClusters, r.allocatedClusters)}% fragmented, ${pct(r.compressedClusters, r.allocatedClusters)}% compressed clusters\n`;
  }
  if (r.imageEndOffset) s += `Image end offset: ${r.imageEndOffset}\n`;
  return s;
}

/** qemu-img check's exit status: 0 clean, 1 check errors, 2 corruptions, 3 leaks only. */
export function checkExitCode(r: CheckResult): number {
  if (r.checkErrors) return 1;
  if (r.corruptions) return 2;
  if (r.leaks) return 3;
  return 0;
}
