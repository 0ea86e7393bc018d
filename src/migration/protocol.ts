// Messages between the core thread and the source's migration worker thread (DESIGN.md §2, §6). The
// worker owns the channel and the stream; it reads and writes guest RAM and the dirty bitmap
// straight from the shared regions. The core thread keeps everything that needs the BQL:
// stopping the VM, draining block I/O, saving and loading device state, the run state.

import type { MessagePort } from "node:worker_threads";
import type { MigrationStatus } from "../qapi/generated/types.js";
import type { SectionInfo } from "./load.js";
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
  /** max-postcopy-bandwidth in bytes per second; 0 = unlimited. */
  maxPostcopyBandwidth: number;
  /** The postcopy-ram and return-path capabilities (either opens the return path). */
  postcopyRam: boolean;
  returnPath: boolean;
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
  /** Out-of-band control links ([0] monitor thread, [1] core thread), as IncomingWorkerData's. */
  links: MessagePort[];
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
  "postcopy-bytes": number;
  "postcopy-requests": number;
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
  | { kind: "failed"; error: string }
  /** Postcopy: switch now (QEMU's postcopy_start): stop the VM and send the devices for the package. */
  | { kind: "postcopy-switch" }
  /** The package is out: the destination runs the guest; `downtimeMs` since the VM stopped. */
  | { kind: "postcopy-started"; downtimeMs: number }
  /** The channel broke in postcopy: postcopy-paused until migrate with resume. */
  | { kind: "paused"; error: string }
  /** migrate resume connected: postcopy-recover (the handshake runs). */
  | { kind: "recover-connected" }
  /** migrate resume could not connect or the handshake failed: still paused. */
  | { kind: "resume-failed"; error: string }
  /** RESUME_ACK arrived: postcopy-active again. */
  | { kind: "postcopy-resumed" };

export type CoreToWorker =
  | { kind: "start"; data: SourceWorkerData }
  | { kind: "switchover"; sections: SavedSection[]; vmdesc: VmdescDevice[] }
  | { kind: "params"; params: WorkerParams }
  | { kind: "cancel" }
  | { kind: "start-postcopy" }
  | { kind: "postcopy-devices"; sections: SavedSection[] }
  | { kind: "resume"; uri: string };

// ---- The destination's receiver thread (src/migration/incoming-worker.ts) ----


export interface IncomingWorkerData {
  role: "incoming";
  uri: string;
  ram: SharedArrayBuffer;
  ramSize: number;
  /** The shared page-present bitmap (postcopy's receivedmap). */
  present: SharedArrayBuffer;
  /** The control words: the migration status words live there (src/core/shared.ts). */
  control: SharedArrayBuffer;
  trace: SharedArrayBuffer;
  machineName: string;
  /** The device sections this machine loads. */
  sections: SectionInfo[];
  /**
   * Links for out-of-band control (migrate-pause, migrate-recover, yank): [0] goes to the
   * monitor thread, which also gets this thread's MIGRATION events; [1] to the core thread,
   * for the same commands sent in-band.
   */
  links: MessagePort[];
  /** TLS (issue 15): the destination's credentials and authz snapshot, or null for plain. */
  tls: import("../crypto/tls-channel.js").MigrationTls | null;
}

/** Requests the receiver makes of the core thread, answered with IncomingReply. */
export type IncomingRequest =
  | { kind: "caps" }
  | { kind: "measure"; idstr: string; instanceId: number; versionId: number; window: Uint8Array }
  /** Precopy's end: adopt the devices (all or nothing). */
  | { kind: "load-devices"; sections: SavedSection[] }
  /** Postcopy's RUN: adopt the devices, take the images, start the guest (or leave it paused). */
  | { kind: "postcopy-run"; sections: SavedSection[] }
  /**
   * Everything arrived. Precopy: take the images, then start the guest. Postcopy: turn the
   * gate off. Answered once done, so the channel closes (and the source completes) only
   * after the destination holds its images.
   */
  | { kind: "finish"; postcopy: boolean };

export type IncomingReply =
  | { ok: true; value?: unknown }
  | { ok: false; error: string };

/** Postcopy fault figures, request to arrival (microseconds). */
export interface FaultLatency {
  faults: number;
  p50: number;
  p99: number;
  max: number;
}

export type IncomingToCore =
  | { kind: "listening"; socketAddress: Array<{ type: "inet"; host: string; port: string } | { type: "unix"; path: string }> }
  | { kind: "listen-failed"; error: string }
  | { kind: "request"; id: number; req: IncomingRequest }
  /** The incoming status moved (the worker already stored the status word and sent the event). */
  | { kind: "status"; status: MigrationStatus }
  /** POSTCOPY_LISTEN: turn the page-present gate on. */
  | { kind: "listen" }
  | { kind: "faults"; latency: FaultLatency; requests: number; pages: number }
  | { kind: "failed"; error: string }
  | { kind: "warn"; message: string };

export type CoreToIncoming =
  | { kind: "reply"; id: number; reply: IncomingReply }
  | { kind: "fault"; page: number };

/** Over the monitor link (monitor thread <-> a migration thread). */
export type MonitorToMigration =
  | { kind: "pause" }
  | { kind: "recover"; id: number; uri: string }
  | { kind: "yank" };

export type MigrationToMonitor =
  | { kind: "reply"; id: number; error?: string }
  | { kind: "event"; event: string; data: Record<string, unknown>; timestamp: { seconds: number; microseconds: number } };
