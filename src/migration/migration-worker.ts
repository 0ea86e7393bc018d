// The source's migration thread (QEMU's migration_thread). It owns the channel and the
// stream and reads guest RAM and the dirty bitmap directly in the shared regions, so the
// guest keeps running and the monitor keeps answering while pages move. Whatever needs the
// BQL (stopping the VM, device state) it asks the core thread for (src/migration/protocol.ts).

import { parentPort, workerData } from "node:worker_threads";
import { openOutgoing } from "./channels.js";
import type { CoreToWorker, RamCounters, SourceWorkerData, WorkerParams, WorkerToCore } from "./protocol.js";
import { QemuFileWriter } from "./qemu-file.js";
import { RamSaver } from "./ram-stream.js";
import { MigrationStreamWriter } from "./stream.js";
import { TRACE } from "../trace/events.js";
import { installTracer, trace } from "../trace/tracer.js";

const PAGE = 4096;
/** QEMU's BUFFER_DELAY: bandwidth, rate limit and statistics work in 100 ms windows. */
const WINDOW_MS = 100;
/** QEMU's auto-converge looks at dirtying only over sync periods of at least a second. */
const THROTTLE_PERIOD_MS = 1000;

function post(m: WorkerToCore): void {
  parentPort?.postMessage(m);
}

class Cancelled extends Error {
  constructor() {
    super("cancelled");
  }
}

/** Messages from the core thread, awaited by kind. */
class Inbox {
  private readonly queue: CoreToWorker[] = [];
  private waiter: (() => void) | null = null;
  cancelled = false;
  params: WorkerParams | null = null;

  constructor() {
    parentPort?.on("message", (m: CoreToWorker) => {
      if (m.kind === "cancel") this.cancelled = true;
      else if (m.kind === "params") this.params = m.params;
      else this.queue.push(m);
      const w = this.waiter;
      this.waiter = null;
      w?.();
    });
  }

  async next<K extends CoreToWorker["kind"]>(kind: K): Promise<Extract<CoreToWorker, { kind: K }>> {
    for (;;) {
      if (this.cancelled) throw new Cancelled();
      const i = this.queue.findIndex((m) => m.kind === kind);
      if (i >= 0) return this.queue.splice(i, 1)[0] as Extract<CoreToWorker, { kind: K }>;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Resolves after `ms`, or at once when a message (cancel, say) arrives. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = null;
        resolve();
      }, ms);
      this.waiter = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

const inbox = new Inbox();

/** QEMU's precopy: passes over the dirty bitmap until the rest fits the downtime limit. */
async function runSource(d: SourceWorkerData): Promise<void> {
  installTracer(d.trace, "migration");
  let params = d.params;
  const t0 = performance.now();
  const channel = await openOutgoing(d.uri, d.tls ?? null);
  try {
    const f = new QemuFileWriter(channel.stream);
    const w = new MigrationStreamWriter(f, d.machineName);
    const ram = new RamSaver({ ram: new Uint8Array(d.ram, 0, d.ramSize), dirty: new Int32Array(d.dirty) });
    let pass = 0;
    let lastSyncAt = performance.now();
    const sync = (): number => {
      const pages = ram.syncDirtyBitmap();
      pass++;
      trace(TRACE.migration_pass, pass, pages, ram.remainingPages);
      post({ kind: "pass", pass });
      return pages;
    };

    // Setup: the header, the RAM block list, and the first sync, which marks every page.
    w.writeHeader();
    sync();
    w.ramStart(ram);
    await f.flush();
    post({ kind: "active" });
    post({ kind: "setup-done", setupTimeMs: performance.now() - t0 });

    // The 100 ms window: bytes sent in it give the bandwidth, which gives the threshold.
    let windowStart = performance.now();
    let windowStartBytes = f.bytesWritten;
    let bandwidth = 0; // bytes per ms
    let thresholdBytes = 0;
    // QEMU's migration_thread starts the estimate at the limit.
    let expectedDowntimeMs = params.downtimeLimitMs;
    // Auto-converge bookkeeping, per sync period (QEMU's migration_trigger_throttle).
    let periodStartBytes = f.bytesWritten;
    let periodDirtyPages = 0;
    let dirtyRateHigh = 0;
    let throttle = 0;
    let dirtyPagesRate = 0;

    const counters = (): RamCounters => ({
      transferred: f.bytesWritten,
      remaining: ram.remainingPages * PAGE,
      total: d.ramSize,
      duplicate: ram.zeroPages,
      normal: ram.normalPages,
      "normal-bytes": ram.normalPages * PAGE,
      "dirty-pages-rate": dirtyPagesRate,
      mbps: (bandwidth * 1000 * 8) / 1e6,
      "dirty-sync-count": pass,
      "pages-per-second": Math.round((ram.zeroPages + ram.normalPages) / Math.max(0.001, (performance.now() - t0) / 1000)),
      "precopy-bytes": f.bytesWritten,
      "downtime-bytes": 0,
    });

    const endWindow = (now: number): void => {
      const ms = now - windowStart;
      bandwidth = (f.bytesWritten - windowStartBytes) / Math.max(ms, 1);
      thresholdBytes = bandwidth * params.downtimeLimitMs;
      // migration_update_counters: only once something was sent and the guest is seen dirtying.
      if (dirtyPagesRate > 0 && f.bytesWritten > 10000 && bandwidth > 0) expectedDowntimeMs = (ram.remainingPages * PAGE) / bandwidth;
      windowStart = now;
      windowStartBytes = f.bytesWritten;
      post({ kind: "stats", ram: counters(), expectedDowntimeMs });
    };

    const afterSync = (dirtyPages: number): void => {
      periodDirtyPages += dirtyPages;
      const now = performance.now();
      const periodMs = now - lastSyncAt;
      if (periodMs < THROTTLE_PERIOD_MS) return;
      dirtyPagesRate = Math.round((periodDirtyPages * 1000) / periodMs);
      // QEMU's migration_trigger_throttle: dirtying faster than threshold% of what was sent,
      // twice in a row, turns the guest down a notch.
      const xfer = f.bytesWritten - periodStartBytes;
      if (params.autoConverge && periodDirtyPages * PAGE > (xfer * params.throttleTriggerThreshold) / 100) {
        if (++dirtyRateHigh >= 2) {
          dirtyRateHigh = 0;
          throttle = nextThrottle(throttle, params, periodDirtyPages * PAGE, (xfer * params.throttleTriggerThreshold) / 100);
          post({ kind: "throttle", percent: throttle });
        }
      }
      lastSyncAt = now;
      periodStartBytes = f.bytesWritten;
      periodDirtyPages = 0;
    };

    for (;;) {
      if (inbox.cancelled) throw new Cancelled();
      if (inbox.params !== null) params = inbox.params;
      const now = performance.now();
      // A pass that ended before the first window did still measured the link: estimate from
      // it rather than idle until 100 ms have passed (an idle guest is done in one pass).
      if (now - windowStart >= WINDOW_MS || (thresholdBytes === 0 && ram.remainingPages === 0 && now - windowStart >= 5)) endWindow(now);
      // QEMU's migration_iteration_run: when the estimate fits, sync for the exact figure.
      if (ram.remainingPages * PAGE <= thresholdBytes || ram.remainingPages === 0) {
        const dirty = sync();
        afterSync(dirty);
        if (ram.remainingPages * PAGE <= thresholdBytes) break;
      }
      // Rate limit: max-bandwidth / 10 bytes per window, then wait for the next one.
      const budget = params.maxBandwidth / (1000 / WINDOW_MS) - (f.bytesWritten - windowStartBytes);
      if (budget <= 0) {
        await inbox.sleep(Math.max(1, WINDOW_MS - (performance.now() - windowStart)));
        continue;
      }
      w.ramPart(ram, Math.min(budget, 1 << 20));
      await f.flush();
    }

    // Switchover: the core stops the VM, drains block I/O and saves the devices.
    post({ kind: "switchover-ready" });
    const sw = await inbox.next("switchover");
    const before = f.bytesWritten;
    await w.ramEnd(ram, { sync: true });
    w.devices(sw.sections, sw.vmdesc);
    w.finish();
    await f.flush();
    // The downtime ends when the last byte is handed over (QEMU's migration_completion), not
    // when the peer closes the channel after loading.
    const sentAtMs = performance.timeOrigin + performance.now();
    f.expectClose();
    await channel.close();
    const final = counters();
    final["downtime-bytes"] = f.bytesWritten - before;
    final["precopy-bytes"] = before;
    final.remaining = 0;
    post({ kind: "completed", ram: final, sentAtMs });
  } catch (e) {
    channel.stream.destroy();
    throw e;
  }
}

/** QEMU 7.2's mig_throttle_guest_down. */
function nextThrottle(current: number, p: WorkerParams, dirtyBytes: number, thresholdBytes: number): number {
  if (current === 0) return Math.min(p.cpuThrottleInitial, p.maxCpuThrottle);
  if (!p.cpuThrottleTailslow) return Math.min(current + p.cpuThrottleIncrement, p.maxCpuThrottle);
  // Tailslow: aim at the throttle that would make dirtying match the threshold.
  const ratio = 1 - thresholdBytes / dirtyBytes;
  const target = current + Math.max(0, (100 - current) * ratio);
  return Math.min(Math.round(Math.min(current + p.cpuThrottleIncrement, target)), p.maxCpuThrottle);
}

/**
 * The thread may be started ahead of time, with no workerData, and handed its migration in a
 * "start" message: a migration then begins without waiting for a thread and its modules.
 */
async function data(): Promise<SourceWorkerData> {
  if (workerData !== null && workerData !== undefined) return workerData as SourceWorkerData;
  return (await inbox.next("start")).data;
}

data().then(runSource).then(
  () => process.exit(0),
  (e: unknown) => {
    post({ kind: "failed", error: e instanceof Cancelled ? "cancelled" : e instanceof Error ? e.message : String(e) });
    // Let the message go before the thread ends.
    setImmediate(() => process.exit(e instanceof Cancelled ? 0 : 1));
  },
);
