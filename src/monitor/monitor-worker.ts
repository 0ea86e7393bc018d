// The monitor thread (QEMU's monitor I/O thread): owns every QMP socket, parses input,
// negotiates, runs out-of-band commands on the spot and feeds in-band ones, one at a time,
// to the core thread. It never takes the BQL.

import { unlinkSync } from "node:fs";
import * as net from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import { wrapPort } from "../core/channel.js";
import type {
  CoreApi,
  CoreToMonitorMessage,
  MainToMonitorMessage,
  MonitorConfig,
  MonitorToMainMessage,
  MonitorWorkerData,
} from "../core/protocol.js";
import { runStateIndex } from "../core/runstate.js";
import { bqlHandle, checkRegions, controlView } from "../core/regions.js";
import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import { TRACE } from "../trace/events.js";
import { installTracer, trace } from "../trace/tracer.js";
import { CONTROL, kickCore } from "../core/shared.js";
import { listenUnixPrivate, strerror } from "../core/unix-socket.js";
import { eventTimestamp } from "../qmp/dispatch.js";
import { formatAddress } from "../qmp/address.js";
import { QmpSession, type SessionHost } from "../qmp/session.js";
import { InbandDispatcher } from "./dispatcher.js";
import { runOobCommand } from "../core/oob-commands.js";
import { MigrationLinks } from "../migration/migration-links.js";
import { acceptTls } from "../crypto/tls-channel.js";
import { authzLookupOf, type AuthzLookup } from "../crypto/objects.js";

const data = workerData as MonitorWorkerData;
const regions = checkRegions(data.regions);
installTracer(regions.trace, "monitor");
/** Commands as trace arguments: their index in the schema's command list. */
const COMMAND_INDEX = new Map([...QMP_COMMANDS.keys()].map((name, i) => [name, i]));
const control = controlView(regions);
const core = wrapPort<CoreApi>(data.corePort);
const bqlObserver = bqlHandle(regions, "monitor");
const sessions = new Set<QmpSession>();
const sockets = new Set<net.Socket>();
/** Each monitor's connected clients by chardev id, for yank. */
const byChardev = new Map<string, Set<net.Socket>>();
const chardevs = {
  ids: () => data.monitors.flatMap((m) => (m.chardevId === undefined ? [] : [m.chardevId])),
  yank: (id: string): boolean => {
    if (!data.monitors.some((m) => m.chardevId === id)) return false;
    // yank_generic_iochannel: shut the connection down; the chardev listens on.
    for (const s of byChardev.get(id) ?? []) s.destroy();
    return true;
  },
};
const servers: net.Server[] = [];
const unixPaths: string[] = [];
/** The authz objects as the core thread last described them (TLS clients are checked here, lock-free). */
let authzLookup: AuthzLookup = authzLookupOf(data.authz ?? []);

/** Output buffered for one client past which we stop reading its input until it drains. */
const MAX_PENDING_OUTPUT = 4 << 20;

function toMain(msg: MonitorToMainMessage): void {
  parentPort?.postMessage(msg);
}

const RUNNING = runStateIndex("running");
const dispatcher = new InbandDispatcher((name, args) => {
  // End a running vCPU's slice early so the command does not wait for it (QEMU's
  // qemu_cpu_kick when the main loop wants the BQL). A stopped VM has no slice to end.
  if (Atomics.load(control, CONTROL.RUN_STATE) === RUNNING) kickCore(control);
  const command = COMMAND_INDEX.get(name) ?? -1;
  const t0 = performance.now();
  trace(TRACE.qmp_request_dispatched, 0, command, 0);
  const done = core.execute(name, args as Record<string, unknown>);
  void done.then(() => trace(TRACE.qmp_request_answered, 0, command, 0, (performance.now() - t0) * 1e6), () => undefined);
  return done;
});

/** The migration threads, for migrate-pause / migrate-recover / yank; their events are broadcast. */
const migrationLinks = new MigrationLinks(control, (event, eventData, timestamp) => broadcast(event, eventData, timestamp));

function broadcast(event: string, eventData: Record<string, unknown> | undefined, timestamp = eventTimestamp()): void {
  for (const s of sessions) s.sendEvent(event, eventData, timestamp);
}

const host: SessionHost = {
  wakeDispatcher: () => dispatcher.wake(),
  runOob: (name, args) => {
    Atomics.add(control, CONTROL.OOB_DISPATCHED, 1);
    const command = COMMAND_INDEX.get(name) ?? -1;
    const t0 = performance.now();
    trace(TRACE.qmp_request_dispatched, 0, command, 1);
    try {
      return runOobCommand(name, args, { control, bql: bqlObserver, outOfBand: true, migration: migrationLinks, chardevs });
    } finally {
      trace(TRACE.qmp_request_answered, 0, command, 1, (performance.now() - t0) * 1e6);
    }
  },
  broadcast: (event, eventData) => broadcast(event, eventData),
};

function attach(socket: net.Socket, config: MonitorConfig): void {
  sockets.add(socket);
  if (config.chardevId !== undefined) {
    const set = byChardev.get(config.chardevId) ?? new Set<net.Socket>();
    byChardev.set(config.chardevId, set);
    set.add(socket);
    socket.once("close", () => set.delete(socket));
  }
  socket.setNoDelay?.(true);
  let outputBlocked = false;
  const session: QmpSession = new QmpSession(
    {
      write: (text) => {
        if (!socket.writable) return;
        // Replies finished in one turn of the event loop (several core messages are handled
        // per turn) leave in one write.
        if (socket.writableCorked === 0) {
          socket.cork();
          setImmediate(() => socket.uncork());
        }
        const ok = socket.write(text);
        if (!ok && !outputBlocked && socket.writableLength > MAX_PENDING_OUTPUT) {
          // A client that does not read its replies must not make us buffer without bound.
          outputBlocked = true;
          session.blockOutput(true);
          socket.once("drain", () => {
            outputBlocked = false;
            session.blockOutput(false);
          });
        }
      },
      flush: () => {
        while (socket.writableCorked > 0) socket.uncork();
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
    },
    host,
    { oobOffered: config.oob, queueFull: config.queueFull },
  );
  sessions.add(session);
  dispatcher.add(session);
  session.greet();
  socket.on("data", (chunk: Buffer) => session.feed(chunk));
  const gone = (): void => {
    session.close();
    sessions.delete(session);
    dispatcher.remove(session);
    sockets.delete(socket);
  };
  socket.on("close", gone);
  socket.on("error", () => socket.destroy());
}

async function listenUnix(server: net.Server, path: string): Promise<void> {
  await listenUnixPrivate(server, path);
  unixPaths.push(path);
}

async function startMonitor(config: MonitorConfig): Promise<{ address: string; firstClient: Promise<void> }> {
  const a = config.address;
  let gotClient: () => void = () => undefined;
  const firstClient = new Promise<void>((r) => (gotClient = r));
  if (!config.server) {
    // server=off: connect out to a client that listens.
    const socket = a.kind === "unix" ? net.connect(a.path) : net.connect(a.port, a.host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", (e) => reject(new Error(`Failed to connect to '${formatAddress(a)}': ${e.message}`)));
    });
    attach(socket, config);
    gotClient();
    return { address: formatAddress(a), firstClient };
  }
  const tls = config.tls;
  const server = net.createServer((socket) => {
    if (tls === undefined) {
      attach(socket, config);
      gotClient();
      return;
    }
    // TLS (issue 15): the handshake and the authz check come first; a failure costs only this
    // client (QEMU 8.1's tcp_chr_tls_handshake report), and the monitor goes on listening.
    const authz = tls.authz === null ? null : { id: tls.authz, lookup: (id: string) => authzLookup(id) };
    acceptTls(socket, tls.creds, authz).then(
      (secure) => {
        attach(secure, config);
        gotClient();
      },
      (e: Error) => process.stderr.write(`minivm: TLS handshake of character device ${tls.chardev} failed: ${e.message}\n`),
    );
  });
  servers.push(server);
  if (a.kind === "unix") {
    await listenUnix(server, a.path);
    return { address: formatAddress(a), firstClient };
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(new Error(`Failed to bind socket: ${strerror(e)}`)));
    server.listen(a.port, a.host, resolve);
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : a.port;
  return { address: formatAddress({ ...a, port }), firstClient };
}

async function closeAll(): Promise<void> {
  for (const s of servers) s.close();
  for (const p of unixPaths) {
    try {
      unlinkSync(p);
    } catch {
      // already gone
    }
  }
  await Promise.all(
    [...sockets].map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once("close", () => resolve());
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
        }),
    ),
  );
  toMain({ kind: "closed" });
}

data.corePort.on("message", (msg: CoreToMonitorMessage | { kind?: undefined }) => {
  if (msg.kind === "event") broadcast(msg.event, msg.data, msg.timestamp);
  else if (msg.kind === "migration-link") migrationLinks.attach(msg.side, msg.port);
  else if (msg.kind === "yank-chardev") chardevs.yank(msg.id);
  else if (msg.kind === "exit") void closeAll();
  else if (msg.kind === "authz") authzLookup = authzLookupOf(msg.definitions);
});

parentPort?.on("message", (msg: MainToMonitorMessage) => {
  if (msg.kind === "close") void closeAll();
});

async function start(): Promise<void> {
  try {
    const started = await Promise.all(data.monitors.map(startMonitor));
    toMain({ kind: "listening", addresses: started.map((s) => s.address) });
    const waits = started.filter((_, i) => data.monitors[i]?.wait === true).map((s) => s.firstClient);
    if (waits.length > 0) {
      await Promise.all(waits);
      toMain({ kind: "connected" });
    }
  } catch (e) {
    toMain({ kind: "error", message: e instanceof Error ? e.message : String(e) });
  }
}

void start();
