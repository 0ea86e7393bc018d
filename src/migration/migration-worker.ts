// The source's migration thread (QEMU's migration_thread). It owns the channel and the
// stream and reads guest RAM and the dirty bitmap directly in the shared regions, so the
// guest keeps running and the monitor keeps answering while pages move. Whatever needs the
// BQL (stopping the VM, device state) it asks the core thread for (src/migration/protocol.ts).

import { parentPort, workerData } from "node:worker_threads";
import type { Socket } from "node:net";
import type { MessagePort } from "node:worker_threads";
import { openOutgoing, type OutgoingChannel } from "./channels.js";
import { MIG_CMD_OPEN_RETURN_PATH, MIG_CMD_PING, MIG_CMD_POSTCOPY_ADVISE } from "./load.js";
import { buildPackage, hasReturnPath, MIG_CMD_PACKAGED, MIG_CMD_POSTCOPY_RESUME, recvBitmapCommand, requestedPages, ReturnPathReader, writeDiscards } from "./postcopy-source.js";
import type { CoreToWorker, MigrationToMonitor, MonitorToMigration, RamCounters, SourceWorkerData, WorkerParams, WorkerToCore } from "./protocol.js";
import { QemuFileWriter } from "./qemu-file.js";
import { RamSaver } from "./ram-stream.js";
import { MigrationStreamWriter } from "./stream.js";
import { TRACE } from "../trace/events.js";
import { installTracer, trace } from "../trace/tracer.js";

const PAGE = 4096;
/** QEMU's BUFFER_DELAY: bandwidth, rate limit and statistics work in 100 ms windows. */
const WINDOW_MS = 100;
/** Postcopy's background push: bytes per step, and the most left queued for the socket. */
const BACKGROUND_CHUNK_BYTES = 64 << 10;
const BACKGROUND_QUEUE_BYTES = 64 << 10;
const BACKGROUND_CHUNK_PAGES = 256;
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

/** The channel broke (the peer went, or migrate-pause / yank shut it): postcopy pauses. */
class ChannelBroken extends Error {}

/** True when `e` is the channel failing under the writer rather than a protocol error. */
function isChannelError(e: unknown, f: QemuFileWriter): boolean {
  return f.error !== null && e === f.error;
}

function be32(v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

/** Messages from the core thread, awaited by kind. */
class Inbox {
  private readonly queue: CoreToWorker[] = [];
  private waiter: (() => void) | null = null;
  cancelled = false;
  params: WorkerParams | null = null;
  startPostcopy = false;
  /** The channel in use, for migrate-pause and yank (qemu_file_shutdown). */
  channel: OutgoingChannel | null = null;

  constructor() {
    parentPort?.on("message", (m: CoreToWorker) => {
      if (m.kind === "cancel") {
        this.cancelled = true;
        // A migration paused in postcopy waits for resume: a cancel ends that wait too.
        this.channel?.stream.destroy();
      } else if (m.kind === "params") this.params = m.params;
      else if (m.kind === "start-postcopy") this.startPostcopy = true;
      else this.queue.push(m);
      this.wake();
    });
  }

  /** Out-of-band control over a link: migrate-pause and yank shut the channel down. */
  listen(port: MessagePort): void {
    port.on("message", (m: MonitorToMigration) => {
      if (m.kind === "pause" || m.kind === "yank") this.channel?.stream.destroy();
      else if (m.kind === "recover") port.postMessage({ kind: "reply", id: m.id, error: "Migrate recover can only be run when postcopy is paused." } satisfies MigrationToMonitor);
    });
  }

  wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
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
  let channel = await openOutgoing(d.uri, d.tls ?? null);
  inbox.channel = channel;
  try {
    let f = new QemuFileWriter(channel.stream);
    let w = new MigrationStreamWriter(f, d.machineName);
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
    // migration_thread: the return path for postcopy (or the return-path capability), a
    // PING to line traces up, and POSTCOPY_ADVISE so a destination that cannot do postcopy
    // says so now rather than at the switch.
    const returnPath = params.postcopyRam || params.returnPath;
    let rp: ReturnPathReader | null = null;
    // Requests and other return-path news; the loops below look at these.
    const urgent: number[] = [];
    let postcopyRequests = 0;
    let shut = false;
    let rpError: string | null = null;
    let rpClosed: string | null = null;
    let receivedBitmap: Uint8Array | null = null;
    let resumeAcked = false;
    const openRp = (): void => {
      rpClosed = null;
      rp = new ReturnPathReader(channel.stream as Socket, {
        shut: (error) => {
          shut = true;
          if (error !== 0) rpError = `RP: Sibling indicated error ${error}`;
          inbox.wake();
        },
        pong: () => undefined,
        reqPages: (block, start, len) => {
          try {
            urgent.push(...requestedPages(ram, block, start, len));
            postcopyRequests++;
          } catch (e) {
            rpError = e instanceof Error ? e.message : String(e);
          }
          inbox.wake();
        },
        recvBitmap: (block, bits) => {
          if (block !== ram.blockName) rpError = `migrate_handle_rp_recv_bitmap: invalid block name '${block}'`;
          else receivedBitmap = bits;
          inbox.wake();
        },
        resumeAck: (v) => {
          if (v !== 1) rpError = `migrate_handle_rp_resume_ack: illegal resume_ack value ${v}`;
          else resumeAcked = true;
          inbox.wake();
        },
        closed: (why) => {
          rpClosed = why;
          inbox.wake();
        },
        bad: (why) => {
          rpError = why;
          inbox.wake();
        },
      });
    };
    if (returnPath) {
      if (!hasReturnPath(d.uri)) throw new Error("Unable to open return-path for postcopy");
      w.command(MIG_CMD_OPEN_RETURN_PATH);
      w.command(MIG_CMD_PING, be32(1));
      openRp();
    }
    if (params.postcopyRam) {
      const advise = Buffer.alloc(16);
      advise.writeBigUInt64BE(BigInt(PAGE), 0);
      advise.writeBigUInt64BE(BigInt(PAGE), 8);
      w.command(MIG_CMD_POSTCOPY_ADVISE, advise);
    }
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
      "postcopy-bytes": 0,
      "postcopy-requests": postcopyRequests,
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

    /**
     * QEMU's postcopy_start, then the postcopy iterations: requested pages first, the rest in
     * the background under max-postcopy-bandwidth, pausing on a broken channel and resuming
     * on a new one, until every page is out and the destination says SHUT.
     */
    const postcopy = async (): Promise<void> => {
      post({ kind: "postcopy-switch" });
      const { sections } = await inbox.next("postcopy-devices");
      const stoppedAt = performance.now();
      // The final sync (ram_postcopy_send_discard_bitmap): the VM is stopped now.
      sync();
      writeDiscards(w, ram);
      w.command(MIG_CMD_PING, be32(2));
      const pkg = await buildPackage(d.machineName, sections);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(pkg.length, 0);
      w.command(MIG_CMD_PACKAGED, len);
      f.putBytes(pkg);
      await f.flush();
      post({ kind: "postcopy-started", downtimeMs: performance.now() - stoppedAt });
      w.command(MIG_CMD_PING, be32(4));
      let sentBefore = 0;
      const precopyBytes = f.bytesWritten;
      const pcCounters = (): RamCounters => {
        const c = counters();
        c.transferred = sentBefore + f.bytesWritten;
        c["precopy-bytes"] = precopyBytes;
        c["postcopy-bytes"] = c.transferred - precopyBytes;
        c["postcopy-requests"] = postcopyRequests;
        c.remaining = ram.remainingPages * PAGE;
        return c;
      };
      let winStart = performance.now();
      let winBytes = f.bytesWritten;
      for (;;) {
        try {
          if (inbox.cancelled) throw new Cancelled();
          if (inbox.params !== null) params = inbox.params;
          if (rpError !== null) throw new Error(rpError);
          if (rpClosed !== null && !shut) throw new ChannelBroken(rpClosed);
          const now = performance.now();
          if (now - winStart >= WINDOW_MS) {
            post({ kind: "stats", ram: pcCounters(), expectedDowntimeMs: 0 });
            winStart = now;
            winBytes = f.bytesWritten;
          }
          if (urgent.length > 0) {
            w.ramPages(ram, urgent.splice(0));
            await f.flush();
            continue;
          }
          if (ram.remainingPages === 0) {
            await w.postcopyEnd(ram);
            await f.flush();
            // The destination says SHUT once it has loaded everything.
            while (!shut && rpError === null && rpClosed === null && !inbox.cancelled) await inbox.sleep(1000);
            if (rpError !== null) throw new Error(rpError);
            if (!shut) throw new ChannelBroken(rpClosed ?? "cancelled");
            const sentAtMs = performance.timeOrigin + performance.now();
            f.expectClose();
            rp?.stop();
            await channel.close().catch(() => undefined);
            const final = pcCounters();
            final.remaining = 0;
            post({ kind: "completed", ram: final, sentAtMs });
            return;
          }
          // Keep the channel shallow: a requested page queues behind whatever background data
          // is already buffered for the socket (no preempt channel, as in QEMU without
          // postcopy-preempt), so push the background only while little is waiting.
          if (channel.stream.writableLength > BACKGROUND_QUEUE_BYTES) {
            await inbox.sleep(1);
            continue;
          }
          // max-postcopy-bandwidth limits the background push, never a requested page.
          const limit = params.maxPostcopyBandwidth;
          let budget = BACKGROUND_CHUNK_BYTES;
          if (limit > 0) {
            budget = Math.min(budget, limit / (1000 / WINDOW_MS) - (f.bytesWritten - winBytes));
            if (budget <= 0) {
              await inbox.sleep(Math.max(1, WINDOW_MS - (performance.now() - winStart)));
              continue;
            }
          }
          // Pages as well as bytes: zero pages cost 9 bytes on the wire but a whole page's
          // comparison here, and a requested page must not wait behind thousands of them.
          w.ramPart(ram, budget, BACKGROUND_CHUNK_PAGES);
          await f.flush();
          // Let the return path's requests in between chunks.
          await new Promise<void>((r) => setImmediate(r));
        } catch (e) {
          if (e instanceof Cancelled || !(e instanceof ChannelBroken || isChannelError(e, f))) throw e;
          // postcopy_pause: close the channel, wait for migrate resume, reconnect, handshake.
          rp?.stop();
          channel.stream.destroy();
          post({ kind: "paused", error: e instanceof Error ? e.message : String(e) });
          for (;;) {
            const { uri } = await inbox.next("resume");
            try {
              if (!hasReturnPath(uri)) throw new Error("Unable to open return-path for postcopy");
              channel = await openOutgoing(uri, d.tls ?? null);
            } catch (err) {
              post({ kind: "resume-failed", error: err instanceof Error ? err.message : String(err) });
              continue;
            }
            inbox.channel = channel;
            post({ kind: "recover-connected" });
            sentBefore += f.bytesWritten;
            f = new QemuFileWriter(channel.stream);
            w = new MigrationStreamWriter(f, d.machineName);
            w.resumeRam();
            receivedBitmap = null;
            resumeAcked = false;
            rpError = null;
            urgent.length = 0;
            openRp();
            try {
              // postcopy_do_resume: RECV_BITMAP per block, the bitmap back, then RESUME.
              recvBitmapCommand(w, ram.blockName);
              await f.flush();
              while (receivedBitmap === null && rpError === null && rpClosed === null) await inbox.sleep(1000);
              if (rpError !== null) throw new Error(rpError);
              if (receivedBitmap === null) throw new ChannelBroken(rpClosed ?? "no bitmap");
              ram.reloadFromReceived(receivedBitmap);
              w.command(MIG_CMD_POSTCOPY_RESUME);
              await f.flush();
              while (!resumeAcked && rpError === null && rpClosed === null) await inbox.sleep(1000);
              if (rpError !== null) throw new Error(rpError);
              if (!resumeAcked) throw new ChannelBroken(rpClosed ?? "no RESUME_ACK");
              post({ kind: "postcopy-resumed" });
              break;
            } catch (err) {
              rp?.stop();
              channel.stream.destroy();
              post({ kind: "resume-failed", error: err instanceof Error ? err.message : String(err) });
            }
          }
          winStart = performance.now();
          winBytes = f.bytesWritten;
        }
      }
    };

    for (;;) {
      if (inbox.cancelled) throw new Cancelled();
      if (inbox.params !== null) params = inbox.params;
      if (rpError !== null) throw new Error(rpError);
      // migration_iteration_run: RAM is all postcopiable, so once asked, postcopy starts now.
      if (inbox.startPostcopy && params.postcopyRam) {
        await postcopy();
        return;
      }
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
  const d = workerData !== null && workerData !== undefined ? (workerData as SourceWorkerData) : (await inbox.next("start")).data;
  for (const port of d.links) inbox.listen(port);
  return d;
}

data().then(runSource).then(
  () => process.exit(0),
  (e: unknown) => {
    post({ kind: "failed", error: e instanceof Cancelled ? "cancelled" : e instanceof Error ? e.message : String(e) });
    // Let the message go before the thread ends.
    setImmediate(() => process.exit(e instanceof Cancelled ? 0 : 1));
  },
);
