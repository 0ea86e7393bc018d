// The live migration engine's core-thread half (QEMU's migration.c around migration_thread
// and process_incoming_migration_co). On the source it starts a migration worker, feeds the
// migration state from its reports, and does what needs the BQL: stopping the VM for the
// switchover with block I/O drained and images flushed, saving the device sections, the run
// states (finish-migrate, postmigrate). On the destination it loads the stream here, in the
// core thread's event loop, and starts the guest when the devices are in.

import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import type { Bql } from "../core/bql.js";
import type { CoreLoop } from "../core/loop.js";
import type { Machine } from "../core/machine.js";
import type { SharedRegions } from "../core/regions.js";
import type { RunStateMachine } from "../core/runstate.js";
import type { MigrationStatus } from "../qapi/generated/types.js";
import { genericError } from "../qapi/error.js";
import type { MigrationEngine } from "./engine.js";
import { measureSection } from "./load.js";
import { MigrationLinks } from "./migration-links.js";
import type {
  CoreToIncoming,
  CoreToWorker,
  IncomingReply,
  IncomingRequest,
  IncomingToCore,
  IncomingWorkerData,
  RamCounters,
  SourceWorkerData,
  WorkerParams,
  WorkerToCore,
} from "./protocol.js";
import type { MigrationState } from "./state.js";
import { markAllPresent } from "../memory/present-gate.js";
import { TRACE } from "../trace/events.js";
import { trace } from "../trace/tracer.js";
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
  /** Hand a migration thread's monitor link to the monitor thread (out-of-band commands, events). */
  attachMonitorLink(side: "outgoing" | "incoming", port: MessagePort): void;
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
    maxPostcopyBandwidth: Number(p["max-postcopy-bandwidth"]),
    postcopyRam: state.capabilities["postcopy-ram"],
    returnPath: state.capabilities["return-path"],
  };
}

/** The live engine: precopy over a migration worker thread (src/migration/migration-worker.ts). */
export class PrecopyEngine implements MigrationEngine {
  private outgoing: Outgoing | null = null;
  private incoming: Incoming | null = null;
  /** A migration thread started ahead of time, its modules loaded, waiting for a migration. */
  private spare: Worker | null = null;
  readonly links: MigrationLinks;

  constructor(private readonly host: MigrationHost) {
    this.links = new MigrationLinks(new Int32Array(host.regions.control), () => undefined);
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
    this.outgoing = new Outgoing(this.host, state, uri, spare, this.links);
    this.warm();
  }

  /** migrate-start-postcopy: the worker switches at its next iteration. */
  startPostcopy(_state: MigrationState): void {
    this.outgoing?.startPostcopy();
  }

  /** migrate with resume: reconnect a paused postcopy migration to `uri`. */
  resume(uri: string, _state: MigrationState): void {
    this.outgoing?.resume(uri);
  }

  startIncoming(uri: string, state: MigrationState): void {
    if (this.incoming !== null) throw genericError("The incoming migration has already been started");
    this.incoming = new Incoming(this.host, state, this.links);
    this.incoming.run(uri);
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
  /** The destination runs the guest: this side can no longer take it back. */
  private postcopyStarted = false;

  constructor(
    private readonly host: MigrationHost,
    private readonly state: MigrationState,
    uri: string,
    spare: Worker | null,
    links: MigrationLinks,
  ) {
    const regions = host.regions;
    const params = workerParams(state);
    this.sentParams = JSON.stringify(params);
    const toMonitor = new MessageChannel();
    const toCore = new MessageChannel();
    const data: SourceWorkerData = {
      role: "source",
      uri,
      ram: regions.ram,
      dirty: regions.dirty,
      ramSize: regions.ramSize,
      machineName: MACHINE_NAME,
      params,
      trace: regions.trace,
      links: [toMonitor.port2, toCore.port2],
      // TLS: the source is the TLS client; the worker wraps its socket (src/crypto/tls-channel.ts),
      // for the first channel and for a postcopy recovery's.
      tls: cloneableTls(migrationTls(host.objects, state.parameters, "source")),
    };
    this.worker = spare ?? new Worker(workerUrl(), { workerData: null });
    this.worker.postMessage({ kind: "start", data } satisfies CoreToWorker, [toMonitor.port2, toCore.port2]);
    host.attachMonitorLink("outgoing", toMonitor.port1);
    links.attach("outgoing", toCore.port1);
    if (state.startPostcopy) this.startPostcopy();
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

  startPostcopy(): void {
    if (!this.finished) this.worker.postMessage({ kind: "start-postcopy" } satisfies CoreToWorker);
  }

  resume(uri: string): void {
    if (!this.finished) this.worker.postMessage({ kind: "resume", uri } satisfies CoreToWorker);
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
      case "postcopy-switch":
        await this.postcopySwitch();
        return;
      case "postcopy-started":
        st.downtime = Math.round(m.downtimeMs);
        return;
      case "paused":
        this.host.warn("Detected IO failure for postcopy. Migration paused.");
        if (!st.transition("postcopy-active", "postcopy-paused")) st.transition("postcopy-recover", "postcopy-paused");
        return;
      case "recover-connected":
        st.transition("postcopy-paused", "postcopy-recover");
        return;
      case "resume-failed":
        this.host.warn(`postcopy recovery failed: ${m.error}`);
        st.transition("postcopy-recover", "postcopy-paused");
        return;
      case "postcopy-resumed":
        st.transition("postcopy-recover", "postcopy-active");
        return;
    }
  }

  /** The downtime starts: the throttle off, the VM in finish-migrate (vm_stop_force_state). */
  private stopForSwitchover(): void {
    const h = this.host;
    this.downtimeStart = performance.now();
    h.bql.with(() => {
      h.loop.setThrottle(0);
      this.state.cpuThrottlePercentage = 0;
      if (h.runState.running) {
        h.loop.vmStop("finish-migrate");
        this.stoppedVm = true;
      } else {
        h.runState.set("finish-migrate");
      }
    });
  }

  /**
   * QEMU's postcopy_start on the core's side: postcopy-active, the VM stopped with its block
   * I/O drained and images handed over, the devices saved for the package.
   */
  private async postcopySwitch(): Promise<void> {
    const h = this.host;
    const st = this.state;
    if (!st.transition("active", "postcopy-active")) return;
    this.stopForSwitchover();
    try {
      await h.block.drain();
      await h.block.inactivate();
      const saved = h.bql.with(() => h.machine.saveWithVmdesc());
      this.postcopyStarted = true;
      this.worker.postMessage({ kind: "postcopy-devices", sections: saved.sections } satisfies CoreToWorker);
    } catch (e) {
      await this.end(e instanceof Error ? e.message : String(e));
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
    c.postcopyBytes = ram["postcopy-bytes"];
    c.postcopyRequests = ram["postcopy-requests"];
  }

  /** QEMU's migration_completion: stop, maybe pause, drain, flush, save the devices. */
  private async switchover(): Promise<void> {
    const h = this.host;
    const st = this.state;
    this.stopForSwitchover();
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
    // In postcopy the downtime ended when the destination got the package (postcopy_start).
    if (!this.postcopyStarted) st.downtime = Math.round(sentAtMs - (performance.timeOrigin + this.downtimeStart));
    // QEMU's migration_calculate_complete: the clock stops with the last byte sent.
    st.totalTime = Math.round(sentAtMs - (performance.timeOrigin + st.startTime));
    // The destination owns the guest now; this one stays stopped.
    h.bql.with(() => h.runState.set("postmigrate"));
    if (!st.transition("device", "completed")) st.transition("postcopy-active", "completed");
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
    if (this.postcopyStarted) {
      // The destination has run the guest: neither the VM nor the images come back here.
      st.totalTime = Math.round(st.now() - st.startTime);
      if (cancelled) st.transition("cancelling", "cancelled");
      else st.fail(error);
      void this.worker.terminate().catch(() => undefined);
      return;
    }
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
 * The incoming side: a receiver thread (src/migration/incoming-worker.ts) owns the channel
 * and writes pages straight into the shared RAM, as QEMU's incoming coroutine and postcopy
 * listen thread do; this core-thread half does what needs the devices or the BQL: decoding
 * device sections, adopting them, the images, the run state, and the page-present gate.
 */
class Incoming {
  private worker: Worker | null = null;
  private finished = false;
  /** Settles once the listener is bound (null) or could not be (the error). */
  readonly listening: Promise<string | null>;
  private listened: (error: string | null) => void = () => undefined;
  private postcopyRunning = false;

  constructor(
    private readonly host: MigrationHost,
    private readonly state: MigrationState,
    private readonly links: MigrationLinks,
  ) {
    this.listening = new Promise((resolve) => (this.listened = resolve));
  }

  run(uri: string): void {
    const { host, state } = this;
    const machine = host.machine;
    const link = new MessageChannel();
    const own = new MessageChannel();
    const data: IncomingWorkerData = {
      role: "incoming",
      uri,
      ram: host.regions.ram,
      ramSize: host.regions.ramSize,
      present: host.regions.present,
      control: host.regions.control,
      trace: host.regions.trace,
      machineName: MACHINE_NAME,
      sections: machine.migrationEntries().map((e) => ({ idstr: e.idstr, instanceId: e.instanceId, versionId: e.owner.vmsd.version_id })),
      links: [link.port2, own.port2],
      // TLS: the destination is the TLS server, for the first channel and for migrate-recover's.
      tls: cloneableTls(migrationTls(host.objects, state.parameters, "destination")),
    };
    const w = new Worker(new URL("./incoming-worker.js", import.meta.url), { workerData: data, transferList: [link.port2, own.port2] });
    this.worker = w;
    host.attachMonitorLink("incoming", link.port1);
    this.links.attach("incoming", own.port1);
    w.on("message", (m: IncomingToCore) => void this.onMessage(m));
    w.on("error", (e) => this.fail(e.message));
    w.on("exit", () => {
      if (!this.finished) this.fail("migration thread ended unexpectedly");
    });
  }

  private reply(id: number, reply: IncomingReply): void {
    this.worker?.postMessage({ kind: "reply", id, reply } satisfies CoreToIncoming);
  }

  private async onMessage(m: IncomingToCore): Promise<void> {
    const { host, state } = this;
    switch (m.kind) {
      case "listening":
        if (m.socketAddress.length > 0) state.incoming.socketAddress = m.socketAddress;
        this.listened(null);
        return;
      case "listen-failed":
        this.listened(m.error);
        this.fail(m.error);
        return;
      case "request":
        try {
          this.reply(m.id, { ok: true, value: await this.serve(m.req) });
        } catch (e) {
          this.reply(m.id, { ok: false, error: e instanceof Error ? e.message : String(e) });
        }
        return;
      case "status":
        state.setIncomingStatus(m.status, { emit: false });
        return;
      case "listen": {
        // POSTCOPY_LISTEN: from here a missing page stops whoever touches it.
        const gate = host.machine.gate;
        const worker = this.worker;
        gate.setHooks({
          request: (page) => worker?.postMessage({ kind: "fault", page } satisfies CoreToIncoming),
          blocked: () => trace(TRACE.vcpu_blocked, BLOCKED_POSTCOPY),
          woken: () => trace(TRACE.vcpu_woken, BLOCKED_POSTCOPY),
        });
        host.machine.cpu.flushTlb();
        gate.active = true;
        return;
      }
      case "faults":
        state.incoming.faults = { ...m.latency, requests: m.requests, pages: m.pages };
        return;
      case "failed":
        this.fail(m.error, false);
        return;
      case "warn":
        host.warn(m.message);
        return;
    }
  }

  private async serve(req: IncomingRequest): Promise<unknown> {
    const { host, state } = this;
    const machine = host.machine;
    switch (req.kind) {
      case "caps":
        return { postcopyRam: state.capabilities["postcopy-ram"], events: state.capabilities.events };
      case "measure": {
        const e = machine.migrationEntries().find((k) => k.idstr === req.idstr && k.instanceId === req.instanceId);
        if (e === undefined) return { kind: "error", message: `Unknown savevm section or instance '${req.idstr}' ${req.instanceId}` };
        return measureSection(e, req.versionId, req.window);
      }
      case "load-devices":
        host.bql.with(() => machine.load(req.sections));
        return undefined;
      case "finish":
        await this.done(req.postcopy);
        return undefined;
      case "postcopy-run": {
        this.postcopyRunning = true;
        host.bql.with(() => machine.load(req.sections));
        // loadvm_postcopy_handle_run_bh: the images first; if they cannot be had, stay paused.
        let autostart = state.incoming.autostart;
        try {
          await host.block.activate();
        } catch (e) {
          host.warn(e instanceof Error ? e.message : String(e));
          autostart = false;
        }
        host.bql.with(() => {
          if (autostart) host.loop.vmStart();
          else host.runState.set("paused");
        });
        return undefined;
      }
    }
  }

  private async done(postcopy: boolean): Promise<void> {
    const { host, state } = this;
    if (this.finished) return;
    if (postcopy) {
      host.machine.gate.active = false;
      host.machine.gate.setHooks(null);
      markAllPresent(new Int32Array(host.regions.present), host.regions.ramSize / 4096);
      this.finished = true;
      state.transitionIncoming("postcopy-active", "completed");
    } else {
      markAllPresent(new Int32Array(host.regions.present), host.regions.ramSize / 4096);
      try {
        await host.block.activate();
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        this.fail(error);
        throw e;
      }
      this.finished = true;
      state.transitionIncoming("active", "completed");
      host.bql.with(() => {
        // QEMU's process_incoming_migration_bh: run, or wait in paused for cont.
        if (state.incoming.autostart) host.loop.vmStart();
        else host.runState.set("paused");
      });
    }
    // The receiver closes its channel once this answer reaches it, then the thread can go.
    const w = this.worker;
    setTimeout(() => void w?.terminate().catch(() => undefined), 1000).unref();
  }

  /** The load failed; `emit` is false when the receiver already stored the status and sent the event. */
  private fail(error: string, emit = true): void {
    if (this.finished) return;
    this.finished = true;
    this.host.warn(`load of migration failed: ${error}`);
    const st = this.state;
    if (emit) {
      if (st.incoming.status === "none") st.incoming.status = "setup";
      st.transitionIncoming(st.incoming.status, "failed");
    } else {
      st.setIncomingStatus("failed", { emit: false });
    }
    // A guest started by postcopy keeps waiting at its faults: QEMU exits here, minivm stays up
    // and says why.
    if (this.postcopyRunning) this.host.warn("the guest's RAM is incomplete: postcopy failed; its vCPU waits for pages that will not come");
    void this.worker?.terminate().catch(() => undefined);
  }
}

/** vcpu_blocked's reason for a postcopy page (src/trace/events.ts). */
const BLOCKED_POSTCOPY = 2;
