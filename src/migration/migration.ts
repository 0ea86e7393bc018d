// The core thread's half of a live migration (QEMU's migration.c around migration_thread):
// it starts a migration worker, feeds the migration state from its reports, and does what
// needs the BQL: stopping the VM for the switchover with block I/O drained and images
// flushed, saving the device sections, loading them on the destination, and the run states
// (finish-migrate and postmigrate on the source, inmigrate until the end on the destination).

import { Worker } from "node:worker_threads";
import type { Bql } from "../core/bql.js";
import type { CoreLoop } from "../core/loop.js";
import type { Machine } from "../core/machine.js";
import type { SharedRegions } from "../core/regions.js";
import type { RunStateMachine } from "../core/runstate.js";
import type { MigrationStatus } from "../qapi/generated/types.js";
import { genericError } from "../qapi/error.js";
import type { MigrationEngine } from "./engine.js";
import type { CoreToWorker, MigrationWorkerData, RamCounters, WorkerParams, WorkerToCore } from "./protocol.js";
import type { MigrationState } from "./state.js";

/** QEMU's name for the board in the stream's configuration section. */
export const MACHINE_NAME = "virt";

/** What the engine needs from the rest of the core thread. */
export interface MigrationHost {
  regions: SharedRegions;
  machine: Machine;
  runState: RunStateMachine;
  loop: CoreLoop;
  /** The main loop's handle on the BQL. */
  bql: Bql;
  block: {
    /** Wait for every in-flight guest request (QEMU's bdrv_drain_all). */
    drain(): Promise<void>;
    /** Flush and give up write access to the images (bdrv_inactivate_all). */
    inactivate(): Promise<void>;
    /** Take write access again (bdrv_activate_all). */
    activate(): Promise<void>;
  };
  /** Something worth saying on stderr (an incoming migration that failed, say). */
  warn(message: string): void;
}

function workerUrl(): URL {
  return new URL("./migration-worker.js", import.meta.url);
}

/** The parameters the worker reads, from the migration state. */
function workerParams(state: MigrationState): WorkerParams {
  const p = state.parameters;
  return {
    downtimeLimitMs: Number(p["downtime-limit"]),
    maxBandwidth: Number(p["max-bandwidth"]),
    autoConverge: state.capabilities["auto-converge"],
    throttleTriggerThreshold: Number(p["throttle-trigger-threshold"]),
    cpuThrottleInitial: Number(p["cpu-throttle-initial"]),
    cpuThrottleIncrement: Number(p["cpu-throttle-increment"]),
    cpuThrottleTailslow: Boolean(p["cpu-throttle-tailslow"]),
    maxCpuThrottle: Number(p["max-cpu-throttle"]),
    pauseBeforeSwitchover: state.capabilities["pause-before-switchover"],
  };
}

/** The live engine: precopy over a migration worker thread (src/migration/migration-worker.ts). */
export class PrecopyEngine implements MigrationEngine {
  private outgoing: Outgoing | null = null;
  private incomingWorker: Worker | null = null;

  constructor(private readonly host: MigrationHost) {}

  startOutgoing(uri: string, state: MigrationState): void {
    this.outgoing = new Outgoing(this.host, state, uri);
  }

  startIncoming(uri: string, state: MigrationState): void {
    if (this.incomingWorker !== null) throw genericError("The incoming migration has already been started");
    this.incomingWorker = startIncomingWorker(this.host, state, uri);
  }

  cancel(_state: MigrationState): void {
    this.outgoing?.cancel();
  }

  continueFromPreSwitchover(_state: MigrationState): void {
    this.outgoing?.continueFromPreSwitchover();
  }
}

/** One outgoing migration: the worker sends, this side stops the VM and saves the devices. */
class Outgoing {
  private readonly worker: Worker;
  private finished = false;
  private stoppedVm = false;
  private downtimeStart = 0;
  private sentParams: string;
  private preSwitchoverWaiter: (() => void) | null = null;

  constructor(
    private readonly host: MigrationHost,
    private readonly state: MigrationState,
    uri: string,
  ) {
    const regions = host.regions;
    const params = workerParams(state);
    this.sentParams = JSON.stringify(params);
    const data: MigrationWorkerData = { role: "source", uri, ram: regions.ram, dirty: regions.dirty, ramSize: regions.ramSize, machineName: MACHINE_NAME, params };
    this.worker = new Worker(workerUrl(), { workerData: data });
    this.worker.on("message", (m: WorkerToCore) => void this.onMessage(m));
    this.worker.on("error", (e) => void this.end(e.message));
    this.worker.on("exit", () => {
      if (!this.finished) void this.end("migration thread ended unexpectedly");
    });
  }

  cancel(): void {
    if (this.finished) return;
    this.worker.postMessage({ kind: "cancel" } satisfies CoreToWorker);
    // Waiting for pre-switchover's migrate-continue: the worker is idle, end it here.
    if (this.preSwitchoverWaiter !== null) void this.end("cancelled");
  }

  continueFromPreSwitchover(): void {
    const w = this.preSwitchoverWaiter;
    this.preSwitchoverWaiter = null;
    w?.();
  }

  private async onMessage(m: WorkerToCore): Promise<void> {
    const st = this.state;
    switch (m.kind) {
      case "active":
        st.transition("setup", "active");
        return;
      case "setup-done":
        st.setupTime = Math.round(m.setupTimeMs);
        return;
      case "pass":
        st.passStarted();
        return;
      case "stats": {
        this.takeCounters(m.ram);
        st.expectedDowntime = Math.round(m.expectedDowntimeMs);
        // migrate-set-parameters during a migration reaches the worker here.
        const params = workerParams(st);
        const json = JSON.stringify(params);
        if (json !== this.sentParams) {
          this.sentParams = json;
          this.worker.postMessage({ kind: "params", params } satisfies CoreToWorker);
        }
        return;
      }
      case "throttle":
        this.host.loop.setThrottle(m.percent);
        st.cpuThrottlePercentage = m.percent;
        return;
      case "switchover-ready":
        await this.switchover();
        return;
      case "completed":
        await this.complete(m.ram);
        return;
      case "failed":
        await this.end(m.error);
        return;
      case "listening":
      case "devices":
        return;
    }
  }

  private takeCounters(ram: RamCounters): void {
    const c = this.state.ram;
    c.transferred = ram.transferred;
    c.remaining = ram.remaining;
    c.total = ram.total;
    c.duplicate = ram.duplicate;
    c.normal = ram.normal;
    c.dirtyPagesRate = ram["dirty-pages-rate"];
    c.mbps = ram.mbps;
    c.pagesPerSecond = ram["pages-per-second"];
    c.precopyBytes = ram["precopy-bytes"];
    c.downtimeBytes = ram["downtime-bytes"];
  }

  /** QEMU's migration_completion: stop, maybe pause, drain, flush, save the devices. */
  private async switchover(): Promise<void> {
    const h = this.host;
    const st = this.state;
    this.downtimeStart = performance.now();
    h.bql.with(() => {
      h.loop.setThrottle(0);
      st.cpuThrottlePercentage = 0;
      if (h.runState.running) {
        h.loop.vmStop("finish-migrate");
        this.stoppedVm = true;
      } else {
        h.runState.set("finish-migrate");
      }
    });
    try {
      if (st.capabilities["pause-before-switchover"]) {
        if (!st.transition("active", "pre-switchover")) return;
        await new Promise<void>((r) => (this.preSwitchoverWaiter = r));
        if (this.finished || st.status !== "device") return;
      } else if (!st.transition("active", "device")) {
        return;
      }
      await h.block.drain();
      await h.block.inactivate();
      const saved = h.bql.with(() => h.machine.saveWithVmdesc());
      this.worker.postMessage({ kind: "switchover", sections: saved.sections, vmdesc: saved.vmdesc } satisfies CoreToWorker);
    } catch (e) {
      await this.end(e instanceof Error ? e.message : String(e));
    }
  }

  private async complete(ram: RamCounters): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    const h = this.host;
    const st = this.state;
    this.takeCounters(ram);
    st.downtime = Math.round(performance.now() - this.downtimeStart);
    st.totalTime = Math.round(st.now() - st.startTime);
    // The destination owns the guest now; this one stays stopped.
    h.bql.with(() => h.runState.set("postmigrate"));
    st.transition("device", "completed");
  }

  /** Failure or cancel: the guest runs on as before, on its images. */
  private async end(error: string): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    const h = this.host;
    const st = this.state;
    const cancelled = error === "cancelled" || st.status === "cancelling";
    h.loop.setThrottle(0);
    st.cpuThrottlePercentage = 0;
    if (this.downtimeStart !== 0) {
      try {
        await h.block.activate();
      } catch (e) {
        h.warn(`could not take the images back after a failed migration: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    h.bql.with(() => {
      if (h.runState.is("finish-migrate")) {
        if (this.stoppedVm) h.loop.vmStart();
        else h.runState.set("paused");
      }
    });
    st.totalTime = Math.round(st.now() - st.startTime);
    if (cancelled) st.transition("cancelling", "cancelled");
    else st.fail(error);
    void this.worker.terminate().catch(() => undefined);
  }
}

/** The incoming side: the worker loads RAM; this side loads the devices and starts the guest. */
function startIncomingWorker(host: MigrationHost, state: MigrationState, uri: string): Worker {
  const data: MigrationWorkerData = {
    role: "destination",
    uri,
    ram: host.regions.ram,
    ramSize: host.regions.ramSize,
    machineName: MACHINE_NAME,
    known: host.machine.sectionIds(),
  };
  const worker = new Worker(workerUrl(), { workerData: data });
  let finished = false;
  const inc = (to: MigrationStatus) => state.transitionIncoming(state.incoming.status, to);
  const fail = (error: string) => {
    if (finished) return;
    finished = true;
    host.warn(`load of migration failed: ${error}`);
    if (state.incoming.status === "none") state.incoming.status = "setup";
    inc("failed");
  };
  worker.on("message", (m: WorkerToCore) => {
    switch (m.kind) {
      case "listening":
        state.incoming.socketAddress = m.socketAddress;
        return;
      case "active":
        state.incoming.status = "setup";
        inc("active");
        return;
      case "devices": {
        let error: string | null = null;
        try {
          host.bql.with(() => host.machine.load(m.sections));
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
        worker.postMessage({ kind: "devices-loaded", error } satisfies CoreToWorker);
        return;
      }
      case "completed":
        if (finished) return;
        finished = true;
        void host.block.activate().then(
          () => {
            inc("completed");
            host.bql.with(() => {
              // QEMU's process_incoming_migration_bh: run, or wait in paused for cont.
              if (state.incoming.autostart) host.loop.vmStart();
              else host.runState.set("paused");
            });
          },
          (e: unknown) => fail(e instanceof Error ? e.message : String(e)),
        );
        return;
      case "failed":
        fail(m.error);
        return;
      default:
        return;
    }
  });
  worker.on("error", (e) => fail(e.message));
  worker.on("exit", () => fail("migration thread ended unexpectedly"));
  return worker;
}
