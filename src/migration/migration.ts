// The live migration engine's core-thread half (QEMU's migration.c around migration_thread
// and process_incoming_migration_co). On the source it starts a migration worker, feeds the
// migration state from its reports, and does what needs the BQL: stopping the VM for the
// switchover with block I/O drained and images flushed, saving the device sections, the run
// states (finish-migrate, postmigrate). On the destination it loads the stream here, in the
// core thread's event loop, and starts the guest when the devices are in.

import { Worker } from "node:worker_threads";
import type { Bql } from "../core/bql.js";
import type { CoreLoop } from "../core/loop.js";
import type { Machine } from "../core/machine.js";
import type { SharedRegions } from "../core/regions.js";
import type { RunStateMachine } from "../core/runstate.js";
import type { MigrationStatus } from "../qapi/generated/types.js";
import { genericError } from "../qapi/error.js";
import type { MigrationEngine } from "./engine.js";
import { listenIncoming, type IncomingListener } from "./channels.js";
import { loadMigrationStream } from "./load.js";
import type { CoreToWorker, RamCounters, SourceWorkerData, WorkerParams, WorkerToCore } from "./protocol.js";
import { QemuFileReader } from "./qemu-file.js";
import { RamLoader } from "./ram-load.js";
import type { MigrationState } from "./state.js";
import type { ObjectRegistry } from "../crypto/objects.js";
import { cloneableTls, migrationTls } from "../crypto/tls-channel.js";

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
  /** TLS (issue 15): the objects that tls-creds / tls-authz name. */
  objects?: ObjectRegistry;
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
  private incoming: Incoming | null = null;
  /** A migration thread started ahead of time, its modules loaded, waiting for a migration. */
  private spare: Worker | null = null;

  constructor(private readonly host: MigrationHost) {
    this.warm();
  }

  /** Start the next migration thread now, so that `migrate` does not wait for one. */
  private warm(): void {
    const w = new Worker(workerUrl(), { workerData: null });
    // A spare thread must not keep the process alive, nor fail it.
    w.unref();
    w.on("error", () => undefined);
    w.once("exit", () => {
      if (this.spare === w) this.spare = null;
    });
    this.spare = w;
  }

  startOutgoing(uri: string, state: MigrationState): void {
    const spare = this.spare;
    this.spare = null;
    spare?.ref();
    this.outgoing = new Outgoing(this.host, state, uri, spare);
    this.warm();
  }

  startIncoming(uri: string, state: MigrationState): void {
    if (this.incoming !== null) throw genericError("The incoming migration has already been started");
    this.incoming = new Incoming(this.host, state);
    void this.incoming.run(uri);
  }

  /**
   * For `--incoming URI` at start-up: resolves once the destination listens (null) or with
   * why it cannot, so the VM announces itself only when a source can connect, as QEMU does.
   */
  incomingListening(): Promise<string | null> {
    return this.incoming?.listening ?? Promise.resolve(null);
  }

  cancel(_state: MigrationState): void {
    this.outgoing?.cancel();
  }

  continueFromPreSwitchover(state: MigrationState): void {
    state.transition("pre-switchover", "device");
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
    spare: Worker | null,
  ) {
    const regions = host.regions;
    const params = workerParams(state);
    this.sentParams = JSON.stringify(params);
    const data: SourceWorkerData = { role: "source", uri, ram: regions.ram, dirty: regions.dirty, ramSize: regions.ramSize, machineName: MACHINE_NAME, params, trace: regions.trace };
    // TLS: the source is the TLS client; the worker wraps its socket (src/crypto/tls-channel.ts).
    data.tls = cloneableTls(migrationTls(host.objects, state.parameters, "source"));
    this.worker = spare ?? new Worker(workerUrl(), { workerData: null });
    this.worker.postMessage({ kind: "start", data } satisfies CoreToWorker);
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
        await this.complete(m.ram, m.sentAtMs);
        return;
      case "failed":
        await this.end(m.error);
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

  private async complete(ram: RamCounters, sentAtMs: number): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    const h = this.host;
    const st = this.state;
    this.takeCounters(ram);
    st.downtime = Math.round(sentAtMs - (performance.timeOrigin + this.downtimeStart));
    // QEMU's migration_calculate_complete: the clock stops with the last byte sent.
    st.totalTime = Math.round(sentAtMs - (performance.timeOrigin + st.startTime));
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

/**
 * The incoming side runs on the core thread, as QEMU's process_incoming_migration_co runs in
 * its main loop: the guest is not running (inmigrate), RAM records go straight into guest RAM
 * between reads, and the event loop, in-band QMP included, stays free while it waits for data.
 * Device state is adopted under the BQL only once the whole stream has arrived.
 */
class Incoming {
  private listener: IncomingListener | null = null;
  private finished = false;
  /** Settles once the listener is bound (null) or could not be (the error). */
  readonly listening: Promise<string | null>;
  private listened: (error: string | null) => void = () => undefined;

  constructor(
    private readonly host: MigrationHost,
    private readonly state: MigrationState,
  ) {
    this.listening = new Promise((resolve) => (this.listened = resolve));
  }

  async run(uri: string): Promise<void> {
    const { host, state } = this;
    try {
      // TLS: the destination is the TLS server; a refused source is reported and the listener waits on.
      const tls = migrationTls(host.objects, state.parameters, "destination");
      if (tls !== null) tls.refused = (reason) => host.warn(`TLS handshake of an incoming migration failed: ${reason}`);
      this.listener = await listenIncoming(uri, tls);
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.listened(error);
      this.fail(error);
      return;
    }
    if (this.listener.socketAddress.length > 0) state.incoming.socketAddress = this.listener.socketAddress;
    this.listened(null);
    const listener = this.listener;
    let input;
    try {
      input = await listener.accept();
    } catch (e) {
      void listener.close().catch(() => undefined);
      this.fail(e instanceof Error ? e.message : String(e));
      return;
    }
    state.incoming.status = "setup";
    state.transitionIncoming("setup", "active");
    const r = new QemuFileReader(input);
    const machine = host.machine;
    try {
      await loadMigrationStream(r, {
        machineName: MACHINE_NAME,
        ram: new RamLoader({ ram: machine.ram.bytes }),
        knownSections: () => machine.migrationEntries(),
        loadDevices: (sections) => host.bql.with(() => machine.load(sections)),
      });
      await host.block.activate();
    } catch (e) {
      input.destroy();
      void listener.close().catch(() => undefined);
      this.fail(e instanceof Error ? e.message : String(e));
      return;
    }
    // Only now: for exec: closing the listener ends the command that feeds the stream.
    input.destroy();
    void listener.close().catch(() => undefined);
    this.finished = true;
    state.transitionIncoming("active", "completed");
    host.bql.with(() => {
      // QEMU's process_incoming_migration_bh: run, or wait in paused for cont.
      if (state.incoming.autostart) host.loop.vmStart();
      else host.runState.set("paused");
    });
  }

  private fail(error: string): void {
    if (this.finished) return;
    this.finished = true;
    this.host.warn(`load of migration failed: ${error}`);
    const st = this.state;
    if (st.incoming.status === "none") st.incoming.status = "setup";
    st.transitionIncoming(st.incoming.status, "failed");
  }
}
