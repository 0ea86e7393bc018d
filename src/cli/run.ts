// `minivm run`: the main thread. It parses nothing itself (main.ts did), allocates the shared
// regions (core/regions.ts) and hands them to the monitor thread (QMP sockets) and the core
// thread (machine + main loop), moves console bytes between stdio and the serial rings, relays
// signals, and ends the process with the status the core thread reports.

import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MessageChannel, Worker } from "node:worker_threads";
import { ShutdownCause_VALUES } from "../qapi/generated/types.js";
import { pumpRing, type ByteRing } from "../core/byte-ring.js";
import type { CoreToMainMessage, CoreWorkerData, MachineConfig, MonitorConfig, MonitorToMainMessage, MonitorWorkerData } from "../core/protocol.js";
import { controlView, createSharedRegions, serialInRing, serialOutRing } from "../core/regions.js";
import { EscapeDecoder } from "./serial.js";
import { openSerialSocket, openSerialTcp } from "./serial-socket.js";
import type { ObjectOptions } from "../qapi/generated/types.js";
import type { ChardevTls } from "../core/protocol.js";
import { authzLookupOf } from "../crypto/objects.js";
import type { AuthzDefinition } from "../crypto/authz.js";
import { CONTROL, Request, kickCore } from "../core/shared.js";
import { Bql } from "../core/bql.js";
import { selectEvents, TRACE_THREADS } from "../trace/events.js";
import { startChromeTrace } from "../trace/chrome.js";
import { ringBytes, setEnabledEvents } from "../trace/ring.js";
import { startDashboard, type DashboardListen } from "../dashboard/server.js";

export interface RunOptions {
  drives: string[];
  blockdevs: CoreWorkerData["blockdevs"];
  devices: CoreWorkerData["devices"];
  machine: MachineConfig | null;
  /** Where the guest's UART0 goes: this process's stdio, a unix socket, or nowhere. */
  serial: "stdio" | "none" | { unix: string } | { file: string } | { tcp: { host: string; port: number }; tls: ChardevTls | null };
  monitors: MonitorConfig[];
  /** `-object` definitions (TLS credentials, authz), already loaded once by the caller. */
  objects?: ObjectOptions[];
  startPaused: boolean;
  /** `--incoming URI|defer` (QEMU's -incoming), or null. */
  incoming: string | null;
  noShutdown: boolean;
  /** QEMU's -no-reboot. */
  noReboot?: boolean;
  /** QEMU's -gdb device for the GDB stub (`-s` = tcp::1234). */
  gdb?: string;
  /** QEMU's -pidfile: written once the monitors listen, removed at exit. */
  pidfile?: string | null;
  /** Called once the monitors listen and the machine has started: -daemonize's parent may go. */
  onReady?: () => void;
  name: string | undefined;
  /** Print where the monitors listen (to stderr) once they do. */
  announce: boolean;
  /** `--trace FILE`: the trace rings, drained to Chrome trace-event JSON. */
  traceFile?: string;
  /** `--trace-events PATTERNS`: which trace points record (default: all). */
  traceEvents?: string;
  /** `--dashboard [HOST:]PORT`: the live teaching view in a browser (src/dashboard). */
  dashboard?: DashboardListen;
}

/** Records per thread ring (48 bytes each): a few seconds of the busiest thread at full rate. */
const TRACE_RING_RECORDS = 16384;

function workerUrl(rel: string): URL {
  return new URL(rel, import.meta.url);
}

function nextMessage<T>(worker: Worker, accept: (m: T) => boolean): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (m: T): void => {
      if (!accept(m)) return;
      cleanup();
      resolve(m);
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new Error(`worker ended unexpectedly (exit code ${code})`));
    };
    const cleanup = (): void => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
  });
}

/**
 * Whether this process's group owns its terminal (Linux /proc/self/stat: pgrp == tpgid). A
 * background job that reads the tty, or changes its modes, is stopped by SIGTTIN/SIGTTOU;
 * `minivm run ... &` must keep running, so a background VM leaves the terminal alone.
 */
export function inForegroundOfTty(): boolean {
  try {
    const stat = readFileSync("/proc/self/stat", "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // state ppid pgrp session tty_nr tpgid
    return fields[2] === fields[5];
  } catch {
    return true;
  }
}

export async function runVm(o: RunOptions): Promise<number> {
  // A private directory for the core thread's temporary files (the snapshot=on overlays):
  // removed below on every way out, including a core thread that died.
  const runTmp = mkdtempSync(join(tmpdir(), "minivm-run-"));
  const removeRunTmp = (): void => rmSync(runTmp, { recursive: true, force: true });
  process.once("exit", removeRunTmp);
  // With nothing to run the core thread builds no Machine; one page of RAM keeps the layout whole.
  const regions = createSharedRegions({ ramSize: o.machine?.ramSize ?? 4096, traceRings: { count: TRACE_THREADS.length, bytes: ringBytes(TRACE_RING_RECORDS) } });
  const control = controlView(regions);
  // Every trace point records into its thread's ring unless --trace-events narrows it.
  setEnabledEvents(regions.trace, selectEvents(o.traceEvents ?? ""));
  const bqlObserver = new Bql(regions.bql, "observer");
  const traceExport = o.traceFile === undefined ? null : startChromeTrace(regions.trace, o.traceFile, () => bqlObserver.snapshot().threads.map((t) => t.thread));
  const channel = new MessageChannel();

  const requestShutdown = (cause: "host-signal" | "host-ui"): void => {
    Atomics.store(control, CONTROL.REQUEST_CAUSE, ShutdownCause_VALUES.indexOf(cause));
    Atomics.store(control, CONTROL.REQUEST, Request.Shutdown);
    kickCore(control);
  };
  // QEMU's qemu_system_killed(): a shutdown request with cause host-signal. A core thread that
  // cannot take it (a vCPU waiting for a postcopy page that will not come, holding the BQL)
  // must not keep the process alive: after a grace period, or at a second signal, go without it.
  let signalled = false;
  let forceTimer: NodeJS.Timeout | null = null;
  const forceExit = (): void => {
    process.stderr.write("minivm: the core thread does not answer (is its vCPU waiting for a postcopy page?); exiting without it\n");
    for (const m of o.monitors) {
      if (m.address.kind === "unix" && m.server) rmSync(m.address.path, { force: true });
    }
    if (o.pidfile != null) rmSync(o.pidfile, { force: true });
    removeRunTmp();
    process.exit(1);
  };
  const onSignal = (): void => {
    if (signalled) {
      forceExit();
      return;
    }
    signalled = true;
    requestShutdown("host-signal");
    forceTimer = setTimeout(forceExit, 5000);
    forceTimer.unref();
  };

  // The console's far end exists before the guest can print: output is never dropped.
  let core: Worker | null = null;
  const input = new RingFeeder(serialInRing(regions), () => kickCore(control));
  const toGuest = (bytes: Uint8Array): void => {
    if (core !== null) input.feed(bytes);
  };
  const authzAtStart = (o.objects ?? []).filter((x): x is AuthzDefinition & ObjectOptions => x["qom-type"] === "authz-simple" || x["qom-type"] === "authz-list");
  const serialSocket =
    typeof o.serial === "object" && "unix" in o.serial
      ? await openSerialSocket(o.serial.unix, toGuest)
      : typeof o.serial === "object" && "tcp" in o.serial
        ? await openSerialTcp(o.serial.tcp, o.serial.tls, authzLookupOf(authzAtStart), toGuest)
        : null;
  if (serialSocket !== null && typeof o.serial === "object" && "tcp" in o.serial && o.announce) {
    process.stderr.write(`minivm: serial console listening on ${serialSocket.address}${o.serial.tls === null ? "" : " (TLS)"}\n`);
  }
  // QEMU's file: chardev opens with O_CREAT|O_TRUNC and writes output only.
  const serialFd = typeof o.serial === "object" && "file" in o.serial ? openSync(o.serial.file, "w") : null;
  const dash = o.dashboard === undefined ? null : await startDashboard({ listen: o.dashboard, regions, toGuest });
  if (dash !== null) process.stderr.write(`minivm: dashboard at ${dash.url}\n`);
  const serialOut = (bytes: Uint8Array): void => {
    if (o.serial === "stdio") process.stdout.write(bytes);
    else if (serialFd !== null) writeSync(serialFd, bytes);
    else serialSocket?.write(bytes);
    dash?.console(bytes);
  };
  const outputRing = serialOutRing(regions);
  const output = pumpRing(outputRing, serialOut);

  const monitorData: MonitorWorkerData = { regions, corePort: channel.port1, monitors: dash === null ? o.monitors : [...o.monitors, dash.monitor], authz: authzAtStart };
  const monitor = new Worker(workerUrl("../monitor/monitor-worker.js"), {
    workerData: monitorData,
    transferList: [channel.port1],
    name: "monitor",
  });

  let coreExit: Promise<CoreToMainMessage> | null = null;
  const startCore = (): Worker => {
    const coreData: CoreWorkerData = {
      regions,
      monitorPort: channel.port2,
      startPaused: o.startPaused,
      incoming: o.incoming,
      noShutdown: o.noShutdown,
      noReboot: o.noReboot === true,
      gdb: o.gdb,
      name: o.name,
      machine: o.machine,
      drives: o.drives,
      blockdevs: o.blockdevs,
      devices: o.devices,
      chardevIds: o.monitors.flatMap((m) => (m.chardevId === undefined ? [] : [m.chardevId])),
      objects: o.objects,
    };
    const w = new Worker(workerUrl("../core/core-worker.js"), {
      workerData: coreData,
      transferList: [channel.port2],
      name: "core",
      env: { ...process.env, TMPDIR: runTmp },
    });
    // Listen from the first moment: an early message (a failed drive) must not be missed.
    w.on("message", (m: CoreToMainMessage) => {
      if (m.kind === "warning") process.stderr.write(`minivm: ${m.message}\n`);
    });
    coreExit = nextMessage<CoreToMainMessage>(w, (m) => m.kind === "exit" || m.kind === "fatal");
    coreExit.catch(() => undefined);
    return w;
  };

  const stdin = process.stdin;
  const isTty = stdin.isTTY === true;
  let consoleAttached = false;
  let rawTty = false;
  const decoder = new EscapeDecoder({
    toGuest,
    quit: () => requestShutdown("host-ui"),
    print: (text) => process.stderr.write(text),
  });
  const onInput = (chunk: Buffer): void => decoder.feed(chunk);
  // The console reads stdin only when it is on stdio and, on a terminal, only while this
  // process is the foreground job; `fg` sends SIGCONT, which brings it back here.
  const wantsConsole = o.serial === "stdio" && o.machine !== null;
  const attachConsole = (): void => {
    if (consoleAttached || !wantsConsole) return;
    if (isTty && !inForegroundOfTty()) return;
    if (isTty) {
      stdin.setRawMode(true);
      rawTty = true;
    }
    stdin.on("data", onInput);
    consoleAttached = true;
  };

  try {
    // Both threads load their modules at the same time, unless a monitor says wait=on:
    // then the machine must not start before a client is there.
    const waitForClient = o.monitors.some((m) => m.wait);
    if (!waitForClient) core = startCore();
    const first = await nextMessage<MonitorToMainMessage>(monitor, (m) => m.kind === "listening" || m.kind === "error");
    if (first.kind === "error") throw new Error(first.message);
    if (first.kind === "listening" && o.announce) {
      for (const a of first.addresses.slice(0, o.monitors.length)) process.stderr.write(`minivm: QMP monitor listening on ${a}\n`);
    }
    dash?.monitorReady();
    if (waitForClient) {
      if (o.announce) process.stderr.write("minivm: waiting for a QMP client to connect (wait=on)\n");
      await nextMessage<MonitorToMainMessage>(monitor, (m) => m.kind === "connected");
      core = startCore();
    }

    attachConsole();
    process.on("SIGCONT", attachConsole);
    if (o.pidfile != null) writeFileSync(o.pidfile, `${process.pid}\n`);
    o.onReady?.();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("SIGHUP", onSignal);

    const exit = await (coreExit as unknown as Promise<CoreToMainMessage>);
    // Everything the guest printed was in the ring before the core thread said it exited.
    output.drain();
    if (exit.kind === "fatal") throw new Error(exit.message);
    const status = exit.kind === "exit" ? exit.status : 1;
    // The monitor closes its sockets when the core's exit reaches it on their shared port,
    // behind the last reply and event; asking it here could overtake them. Only if the
    // core thread died without saying so does the main thread have to ask.
    const closed = nextMessage<MonitorToMainMessage>(monitor, (m) => m.kind === "closed");
    const fallback = setTimeout(() => monitor.postMessage({ kind: "close" }), 5000);
    await closed;
    clearTimeout(fallback);
    return status;
  } finally {
    const missed = traceExport?.stop() ?? 0;
    if (missed > 0) process.stderr.write(`minivm: the trace lost ${missed} events (rings overwritten before they were drained)\n`);
    output.stop();
    input.stop();
    // A vCPU still blocked on a full ring must not wait for a reader that is gone.
    outputRing.close();
    process.off("SIGCONT", attachConsole);
    if (consoleAttached) {
      stdin.off("data", onInput);
      if (rawTty) stdin.setRawMode(false);
      stdin.pause();
    }
    serialSocket?.close();
    await dash?.stop();
    if (serialFd !== null) closeSync(serialFd);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
    if (forceTimer !== null) clearTimeout(forceTimer);
    await Promise.all([(core as Worker | null)?.terminate(), monitor.terminate()]);
    // Normally the monitor removed its sockets; after a failed start it never got to.
    for (const m of o.monitors) {
      if (m.address.kind === "unix" && m.server) rmSync(m.address.path, { force: true });
    }
    if (o.pidfile != null) rmSync(o.pidfile, { force: true });
    removeRunTmp();
    process.off("exit", removeRunTmp);
  }
}

/**
 * Writes console input into the serial-in ring from the main thread, which must never block:
 * bytes that do not fit wait here, in order, until the core thread makes room.
 */
class RingFeeder {
  private queue: Uint8Array[] = [];
  private waiting = false;
  private stopped = false;

  constructor(
    private readonly ring: ByteRing,
    private readonly kick: () => void,
  ) {}

  feed(bytes: Uint8Array): void {
    if (this.stopped) return;
    this.queue.push(bytes.slice());
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
  }

  private pump(): void {
    if (this.waiting) return;
    let wrote = false;
    while (this.queue.length > 0) {
      const head = this.queue[0];
      const n = this.ring.write(head);
      if (n > 0) wrote = true;
      if (n === head.length) {
        this.queue.shift();
        continue;
      }
      this.queue[0] = head.subarray(n);
      this.waiting = true;
      void this.ring.waitForSpace().then(() => {
        this.waiting = false;
        if (!this.stopped) this.pump();
      });
      break;
    }
    if (wrote) {
      this.ring.notifyReader();
      this.kick();
    }
  }
}
