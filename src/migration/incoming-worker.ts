// The destination's receiver thread: QEMU's incoming coroutine, postcopy listen thread and
// fault thread in one. It owns the channel, reads the stream and puts pages straight into the
// shared guest RAM; device state goes to the core thread (which owns the devices) by message.
// During postcopy it must never wait for the core: a vCPU that touched a missing page sits in
// Atomics.wait holding the BQL until this thread places the page. It answers the source on the
// return path (PONG, page requests, the received bitmap, RESUME_ACK), and survives a broken
// channel: postcopy-paused until migrate-recover (out of band, from the monitor thread over
// its link) gives it a new one.

import type { Readable } from "node:stream";
import type { Socket } from "node:net";
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { listenIncoming, type IncomingListener } from "./channels.js";
import { loadMigrationStream, type PostcopyHooks, type SectionMeasure } from "./load.js";
import type {
  CoreToIncoming,
  FaultLatency,
  IncomingReply,
  IncomingRequest,
  IncomingToCore,
  IncomingWorkerData,
  MigrationToMonitor,
  MonitorToMigration,
} from "./protocol.js";
import { QemuFileReader } from "./qemu-file.js";
import { MigrationLoadError, RamLoader } from "./ram-load.js";
import { RAM_PAGE_SIZE } from "./ram-stream.js";
import type { SavedSection } from "./sections.js";
import { POSTCOPY_WAITING_WORD, storeMigrationStatus } from "./status-word.js";
import { clearPresent } from "../memory/present-gate.js";
import type { MigrationStatus } from "../qapi/generated/types.js";
import { TRACE } from "../trace/events.js";
import { installTracer, trace } from "../trace/tracer.js";
import { eventTimestamp } from "../qmp/dispatch.js";

/** Return-path message types (migration.c enum mig_rp_message_type). */
export const MIG_RP_MSG_SHUT = 1;
export const MIG_RP_MSG_PONG = 2;
export const MIG_RP_MSG_REQ_PAGES_ID = 3;
export const MIG_RP_MSG_REQ_PAGES = 4;
export const MIG_RP_MSG_RECV_BITMAP = 5;
export const MIG_RP_MSG_RESUME_ACK = 6;
/** MIGRATION_RESUME_ACK_VALUE. */
export const RESUME_ACK_VALUE = 1;
/** RAMBLOCK_RECV_BITMAP_ENDING. */
export const RECV_BITMAP_ENDING = 0x0123456789abcdefn;

const d = workerData as IncomingWorkerData;
// One migration thread runs at a time (a destination migrates out only once its load is over).
installTracer(d.trace, "migration");
const control = new Int32Array(d.control);
const present = new Int32Array(d.present);
const pages = d.ramSize / RAM_PAGE_SIZE;
// TLS: a source whose handshake is refused is reported, and the listener waits on (QEMU).
const tls = d.tls === null ? null : { ...d.tls, refused: (reason: string) => post({ kind: "warn", message: `TLS handshake of an incoming migration failed: ${reason}` }) };

function post(m: IncomingToCore): void {
  parentPort?.postMessage(m);
}

function toMonitor(m: MigrationToMonitor, port: MessagePort = d.links[0]): void {
  port.postMessage(m);
}

// ---- requests to the core thread ----

let nextId = 1;
const pendingReplies = new Map<number, (r: IncomingReply) => void>();

function request(req: IncomingRequest, transfer?: ArrayBuffer[]): Promise<IncomingReply> {
  const id = nextId++;
  return new Promise((resolve) => {
    pendingReplies.set(id, resolve);
    if (transfer !== undefined) parentPort?.postMessage({ kind: "request", id, req } satisfies IncomingToCore, transfer);
    else post({ kind: "request", id, req });
  });
}

async function call(req: IncomingRequest): Promise<unknown> {
  const r = await request(req);
  if (!r.ok) throw new MigrationLoadError(r.error);
  return r.value;
}

// ---- status, as QEMU's migrate_set_state on mis->state ----

let status: MigrationStatus = "setup";
let eventsOn = false;

function setStatus(from: MigrationStatus, to: MigrationStatus): boolean {
  if (status !== from) return false;
  status = to;
  storeMigrationStatus(control, "incoming", to);
  // The event leaves from here, not from the core: the core may be stuck on a fault.
  if (eventsOn) toMonitor({ kind: "event", event: "MIGRATION", data: { status: to }, timestamp: eventTimestamp() });
  post({ kind: "status", status: to });
  return true;
}

// ---- the return path ----

class ReturnPath {
  open = false;
  /** The last block named in a page request (QEMU's mis->last_rb); reset on a new channel. */
  named = false;

  constructor(private sock: Socket | null) {}

  attach(sock: Socket | null): void {
    this.sock = sock;
    this.named = false;
  }

  get usable(): boolean {
    return this.open && this.sock !== null && !this.sock.destroyed;
  }

  send(type: number, payload: Uint8Array, trailer?: Uint8Array): void {
    if (!this.usable) return;
    const b = Buffer.alloc(4 + payload.length);
    b.writeUInt16BE(type, 0);
    b.writeUInt16BE(payload.length, 2);
    b.set(payload, 4);
    this.sock!.write(trailer === undefined ? b : Buffer.concat([b, trailer]));
  }

  be32(type: number, v: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(v >>> 0, 0);
    this.send(type, p);
  }

  requestPage(page: number, blockName: string): void {
    const name = Buffer.from(blockName, "latin1");
    const p = Buffer.alloc(12 + (this.named ? 0 : 1 + name.length));
    p.writeBigUInt64BE(BigInt(page * RAM_PAGE_SIZE), 0);
    p.writeUInt32BE(RAM_PAGE_SIZE, 8);
    if (!this.named) {
      p[12] = name.length;
      p.set(name, 13);
      this.named = true;
      this.send(MIG_RP_MSG_REQ_PAGES_ID, p);
    } else {
      this.send(MIG_RP_MSG_REQ_PAGES, p);
    }
  }

  /** migrate_send_rp_recv_bitmap + ramblock_recv_bitmap_send: the name, then size, bitmap, end mark. */
  recvBitmap(blockName: string): void {
    const name = Buffer.from(blockName, "latin1");
    const p = Buffer.alloc(1 + name.length);
    p[0] = name.length;
    p.set(name, 1);
    const size = Math.ceil(Math.ceil(pages / 8) / 8) * 8;
    const trailer = Buffer.alloc(8 + size + 8);
    trailer.writeBigUInt64BE(BigInt(size), 0);
    // The present bitmap's bytes are already QEMU's little-endian long order: bit p of the
    // whole map is bit (p & 7) of byte p >> 3.
    const bytes = new Uint8Array(present.buffer, present.byteOffset, Math.min(present.byteLength, Math.ceil(pages / 8)));
    trailer.set(bytes, 8);
    // No bit past the last page.
    if (pages % 8 !== 0) trailer[8 + (pages >>> 3)] &= (1 << (pages % 8)) - 1;
    trailer.writeBigUInt64BE(RECV_BITMAP_ENDING, 8 + size);
    this.send(MIG_RP_MSG_RECV_BITMAP, p, trailer);
  }
}

// ---- faults: requests outstanding and their latency ----

const outstanding = new Map<number, number>();
const latenciesUs: number[] = [];
let requests = 0;
let placed = 0;
const rp = new ReturnPath(null);
let blockName = "riscv_virt_board.ram";

function sendRequest(page: number): void {
  if (status !== "postcopy-active") return; // re-sent after a recovery's RESUME
  rp.requestPage(page, blockName);
}

function onFault(page: number): void {
  if ((Atomics.load(present, page >>> 5) & (1 << (page & 31))) !== 0) return;
  if (outstanding.has(page)) return;
  outstanding.set(page, performance.now());
  requests++;
  // Traced when the vCPU asks, even with the link down: the page map shows what it waits for.
  trace(TRACE.migration_page_requested, page);
  sendRequest(page);
}

function onPlaced(page: number): void {
  placed++;
  const t0 = outstanding.get(page);
  if (t0 === undefined) return;
  outstanding.delete(page);
  const us = (performance.now() - t0) * 1000;
  latenciesUs.push(us);
  trace(TRACE.migration_page_received, page, us * 1000);
  scheduleFaultReport();
}

function latency(): FaultLatency {
  const s = [...latenciesUs].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(q * s.length))]);
  return { faults: s.length, p50: Math.round(at(0.5)), p99: Math.round(at(0.99)), max: Math.round(s.length === 0 ? 0 : s[s.length - 1]) };
}

let reportTimer: NodeJS.Timeout | null = null;
function scheduleFaultReport(): void {
  if (reportTimer !== null) return;
  reportTimer = setTimeout(() => {
    reportTimer = null;
    post({ kind: "faults", latency: latency(), requests, pages: placed });
  }, 100);
}

// ---- messages from the core and the monitor ----

let recoverWaiter: ((uri: string, id: number, port: MessagePort) => void) | null = null;
let currentInput: Readable | null = null;

parentPort?.on("message", (m: CoreToIncoming) => {
  if (m.kind === "reply") {
    const r = pendingReplies.get(m.id);
    pendingReplies.delete(m.id);
    r?.(m.reply);
  } else if (m.kind === "fault") {
    onFault(m.page);
  }
});

for (const port of d.links) {
  port.on("message", (m: MonitorToMigration) => {
    if (m.kind === "pause" || m.kind === "yank") {
      // qemu_file_shutdown: the reader fails, and the load pauses (postcopy) or fails.
      currentInput?.destroy();
    } else if (m.kind === "recover") {
      if (recoverWaiter === null || status !== "postcopy-paused") {
        toMonitor({ kind: "reply", id: m.id, error: "Migrate recover can only be run when postcopy is paused." }, port);
        return;
      }
      recoverWaiter(m.uri, m.id, port);
    }
  });
}

// ---- the load ----

function measure(idstr: string, instanceId: number, versionId: number, window: Uint8Array): Promise<SectionMeasure> {
  return call({ kind: "measure", idstr, instanceId, versionId, window: window.slice() }) as Promise<SectionMeasure>;
}

let listener: IncomingListener | null = null;

async function closeListener(): Promise<void> {
  const l = listener;
  listener = null;
  await l?.close().catch(() => undefined);
}

/** Wait for migrate-recover, listen where it says, and take the source's new channel. */
async function recover(): Promise<Readable> {
  for (;;) {
    const { uri, id, port } = pendingRecover ?? (await new Promise<{ uri: string; id: number; port: MessagePort }>((resolve) => {
      recoverWaiter = (u, i, p) => resolve({ uri: u, id: i, port: p });
    }));
    pendingRecover = null;
    recoverWaiter = null;
    await closeListener();
    try {
      listener = await listenIncoming(uri, tls);
    } catch (e) {
      toMonitor({ kind: "reply", id, error: e instanceof Error ? e.message : String(e) }, port);
      continue;
    }
    toMonitor({ kind: "reply", id }, port);
    post({ kind: "listening", socketAddress: listener.socketAddress });
    const l = listener;
    // Another migrate-recover replaces this listener (QEMU releases the old transport).
    const got = await Promise.race([
      l.accept().then((s) => ({ s })),
      new Promise<{ again: true }>((resolve) => {
        recoverWaiter = (u, i, p) => {
          recoverWaiter = null;
          pendingRecover = { uri: u, id: i, port: p };
          resolve({ again: true });
        };
      }),
    ]);
    if ("again" in got) continue;
    recoverWaiter = null;
    return got.s;
  }
}
let pendingRecover: { uri: string; id: number; port: MessagePort } | null = null;

async function run(): Promise<void> {
  try {
    listener = await listenIncoming(d.uri, tls);
  } catch (e) {
    post({ kind: "listen-failed", error: e instanceof Error ? e.message : String(e) });
    return;
  }
  post({ kind: "listening", socketAddress: listener.socketAddress });
  let input: Readable;
  try {
    input = await listener.accept();
  } catch (e) {
    await closeListener();
    post({ kind: "failed", error: e instanceof Error ? e.message : String(e) });
    return;
  }
  currentInput = input;
  storeMigrationStatus(control, "incoming", "setup");
  const caps = (await call({ kind: "caps" })) as { postcopyRam: boolean; events: boolean };
  eventsOn = caps.events;
  setStatus("setup", "active");
  rp.attach(isSocket(input) ? input : null);

  const ram = new RamLoader({ ram: new Uint8Array(d.ram, 0, d.ramSize), present, onPlaced, waiting: { words: control, index: POSTCOPY_WAITING_WORD } });
  blockName = ram.blockName;
  // Every page starts missing; each one that arrives is marked (QEMU's receivedmap).
  for (let p = 0; p < pages; p++) clearPresent(present, p);
  let runDone: Promise<void> | null = null;

  const hooks: PostcopyHooks = {
    openReturnPath: () => {
      if (!isSocket(currentInput)) throw new MigrationLoadError("CMD_OPEN_RETURN_PATH failed");
      rp.open = true;
    },
    ping: (v) => rp.be32(MIG_RP_MSG_PONG, v),
    postcopyRam: () => caps.postcopyRam,
    discard: (name, ranges) => {
      if (name !== ram.blockName) throw new MigrationLoadError(`ram_discard_range: Failed to find block '${name}'`);
      for (const [start, length] of ranges) {
        if (start % RAM_PAGE_SIZE !== 0 || length % RAM_PAGE_SIZE !== 0 || start + length > d.ramSize) {
          throw new MigrationLoadError(`ram_discard_range: Overrun block '${name}' (${start}/${length}/${d.ramSize})`);
        }
        for (let p = start / RAM_PAGE_SIZE; p < (start + length) / RAM_PAGE_SIZE; p++) clearPresent(present, p);
      }
    },
    listen: () => {
      ram.postcopy = true;
      post({ kind: "listen" });
      setStatus("active", "postcopy-active");
    },
    run: (sections: SavedSection[]) => {
      runDone = call({ kind: "postcopy-run", sections }).then(
        () => undefined,
        (e: unknown) => {
          throw e;
        },
      );
      // Surface a failure at once; the loader itself does not wait for the devices.
      runDone.catch((e: unknown) => {
        const error = e instanceof Error ? e.message : String(e);
        fail(error);
        currentInput?.destroy();
      });
    },
    recvBitmap: (name) => rp.recvBitmap(name),
    resume: () => {
      if (status !== "postcopy-recover") {
        post({ kind: "warn", message: "loadvm_postcopy_handle_resume: illegal resume received" });
        return;
      }
      rp.named = false;
      setStatus("postcopy-recover", "postcopy-active");
      rp.be32(MIG_RP_MSG_RESUME_ACK, RESUME_ACK_VALUE);
      // The source lost its queue with the old channel: ask again for every page a thread waits on.
      for (const page of outstanding.keys()) sendRequest(page);
    },
    channelBroken: async () => {
      if (failed) throw new MigrationLoadError(failed);
      currentInput?.destroy();
      rp.attach(null);
      await closeListener();
      if (status === "postcopy-recover") setStatus("postcopy-recover", "postcopy-paused");
      else setStatus("postcopy-active", "postcopy-paused");
      post({ kind: "warn", message: "Detected IO failure for postcopy. Migration paused." });
      const s = await recover();
      currentInput = s;
      rp.attach(isSocket(s) ? s : null);
      setStatus("postcopy-paused", "postcopy-recover");
      return new QemuFileReader(s);
    },
  };

  try {
    const result = await loadMigrationStream(new QemuFileReader(input), {
      machineName: d.machineName,
      ram,
      catalog: { sections: d.sections, measure },
      loadDevices: async (sections) => {
        await call({ kind: "load-devices", sections });
      },
      postcopy: hooks,
    });
    if (result.postcopy && runDone !== null) await runDone;
    if (failed) return;
    if (result.postcopy) {
      for (let p = 0; p < pages; p++) {
        if ((Atomics.load(present, p >>> 5) & (1 << (p & 31))) === 0) throw new MigrationLoadError(`postcopy ended with page ${p} (offset 0x${(p * RAM_PAGE_SIZE).toString(16)}) never received`);
      }
    }
    if (reportTimer !== null) clearTimeout(reportTimer);
    post({ kind: "faults", latency: latency(), requests, pages: placed });
    // The core takes the images and moves the status to completed; only then does the
    // channel close (which is when a source without a return path sees the end).
    await call({ kind: "finish", postcopy: result.postcopy });
    // migration_incoming_state_destroy: "Tell source that we are done".
    rp.be32(MIG_RP_MSG_SHUT, 0);
    currentInput?.destroy();
    await closeListener();
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    fail(error);
    currentInput?.destroy();
    await closeListener();
  }
}

let failed: string | null = null;
function fail(error: string): void {
  if (failed !== null) return;
  failed = error;
  storeMigrationStatus(control, "incoming", "failed");
  if (eventsOn) toMonitor({ kind: "event", event: "MIGRATION", data: { status: "failed" }, timestamp: eventTimestamp() });
  status = "failed";
  post({ kind: "failed", error });
}

function isSocket(s: unknown): s is Socket {
  return s !== null && typeof s === "object" && typeof (s as Socket).setNoDelay === "function" && typeof (s as Socket).write === "function";
}

void run().finally(() => {
  // Let the last messages go; the core ends this thread.
});
