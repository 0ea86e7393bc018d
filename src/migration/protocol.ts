// Messages between the core thread and the source's migration worker thread (DESIGN.md §2, §6). The
// worker owns the channel and the stream; it reads and writes guest RAM and the dirty bitmap
// straight from the shared regions. The core thread keeps everything that needs the BQL:
// stopping the VM, draining block I/O, saving and loading device state, the run state.

import type { SavedSection } from "./sections.js";
import type { VmdescDevice } from "./vmstate-json.js";

/** The parameters the worker reads, in QEMU's units (ms, bytes per second, percent). */
export interface WorkerParams {
  downtimeLimitMs: number;
  maxBandwidth: number;
  autoConverge: boolean;
  throttleTriggerThreshold: number;
  cpuThrottleInitial: number;
  cpuThrottleIncrement: number;
  cpuThrottleTailslow: boolean;
  maxCpuThrottle: number;
  pauseBeforeSwitchover: boolean;
}

export interface SourceWorkerData {
  role: "source";
  uri: string;
  ram: SharedArrayBuffer;
  dirty: SharedArrayBuffer;
  ramSize: number;
  machineName: string;
  params: WorkerParams;
  /** The shared trace region, for this thread's ring. */
  trace: SharedArrayBuffer;
  /** TLS (issue 15): credentials for the channel, or null for plain. */
  tls?: import("../crypto/tls-channel.js").MigrationTls | null;
}


/** QEMU's MigrationStats, as far as the worker measures it. */
export interface RamCounters {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  "normal-bytes": number;
  "dirty-pages-rate": number;
  mbps: number;
  "dirty-sync-count": number;
  "pages-per-second": number;
  "precopy-bytes": number;
  "downtime-bytes": number;
}

export type WorkerToCore =
  | { kind: "active" }
  | { kind: "setup-done"; setupTimeMs: number }
  | { kind: "pass"; pass: number }
  | { kind: "stats"; ram: RamCounters; expectedDowntimeMs: number }
  | { kind: "throttle"; percent: number }
  /** Source: the remainder fits the downtime; stop the VM and send the devices. */
  | { kind: "switchover-ready" }
  /** sentAtMs: when the last byte was handed to the channel (ms since the epoch). */
  | { kind: "completed"; ram: RamCounters; sentAtMs: number }
  | { kind: "failed"; error: string };

export type CoreToWorker =
  | { kind: "start"; data: SourceWorkerData }
  | { kind: "switchover"; sections: SavedSection[]; vmdesc: VmdescDevice[] }
  | { kind: "params"; params: WorkerParams }
  | { kind: "cancel" };
