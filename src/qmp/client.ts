// A typed QMP client: connect, negotiate, execute (in-band) and execOob, and events as an
// async iterator. Used by the shell, the tests and the benchmarks; it speaks to minivm and
// to QEMU alike.

import * as net from "node:net";
import type { QmpCommandMap, QmpCommandName } from "../qapi/generated/commands.js";
import type { SocketAddress } from "../core/protocol.js";

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export type QmpReply = { return: unknown; id?: unknown } | { error: { class: string; desc: string }; id?: unknown };

/** A command's error reply, as an exception. */
export class QmpCommandError extends Error {
  constructor(
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`${errorClass}: ${desc}`);
    this.name = "QmpCommandError";
  }
}

export function parseAddress(text: string): SocketAddress {
  if (text.startsWith("unix:")) return { kind: "unix", path: text.slice(5).split(",")[0] ?? "" };
  if (text.startsWith("tcp:")) {
    const hp = text.slice(4).split(",")[0] ?? "";
    const colon = hp.lastIndexOf(":");
    return { kind: "tcp", host: hp.slice(0, colon) || "127.0.0.1", port: Number(hp.slice(colon + 1)) };
  }
  if (/^[^/]*:\d+$/.test(text)) {
    const colon = text.lastIndexOf(":");
    return { kind: "tcp", host: text.slice(0, colon) || "127.0.0.1", port: Number(text.slice(colon + 1)) };
  }
  return { kind: "unix", path: text };
}

type Pending = { resolve: (r: QmpReply) => void; reject: (e: Error) => void };

export interface ConnectOptions {
  /** Send qmp_capabilities (default true). */
  negotiate?: boolean;
  /** Ask for the oob capability when offered (default true). */
  oob?: boolean;
}

export class QmpClient {
  greeting!: QmpGreeting;
  private buffer = "";
  private nextId = 0;
  private readonly pending = new Map<string, Pending>();
  /** Waiters for replies that carry no id (raw requests without one), oldest first. */
  private readonly idless: Pending[] = [];
  private readonly eventQueue: QmpEvent[] = [];
  private readonly eventWaiters: Array<(e: QmpEvent | null) => void> = [];
  private greetingWaiter: ((g: QmpGreeting) => void) | null = null;
  private closedError: Error | null = null;
  /** Every line received, for tests and the shell's raw mode. */
  onLine: ((line: string) => void) | null = null;
  /** Called for every event as it arrives (in addition to the iterator). */
  onEvent: ((e: QmpEvent) => void) | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding("utf8");
    socket.setNoDelay(true);
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("close", () => this.fail(new Error("QMP connection closed")));
    socket.on("error", (e) => this.fail(e));
  }

  static async connect(address: string | SocketAddress, options: ConnectOptions = {}): Promise<QmpClient> {
    const a = typeof address === "string" ? parseAddress(address) : address;
    const socket = a.kind === "unix" ? net.connect(a.path) : net.connect(a.port, a.host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new QmpClient(socket);
    client.greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      client.greetingWaiter = resolve;
      socket.once("close", () => reject(new Error("QMP connection closed before the greeting")));
    });
    if (options.negotiate ?? true) {
      const oob = (options.oob ?? true) && client.greeting.QMP.capabilities.includes("oob");
      await client.executeRaw("qmp_capabilities", oob ? { enable: ["oob"] } : {});
    }
    return client;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, "");
      this.buffer = this.buffer.slice(nl + 1);
      if (line.length > 0) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    this.onLine?.(line);
    const msg = JSON.parse(line) as Record<string, unknown>;
    if ("QMP" in msg && this.greetingWaiter !== null) {
      this.greetingWaiter(msg as unknown as QmpGreeting);
      this.greetingWaiter = null;
      return;
    }
    if ("event" in msg) {
      const e = msg as unknown as QmpEvent;
      this.onEvent?.(e);
      const w = this.eventWaiters.shift();
      if (w !== undefined) w(e);
      else this.eventQueue.push(e);
      return;
    }
    const reply = msg as QmpReply;
    const id = reply.id;
    if (typeof id === "string" && this.pending.has(id)) {
      const p = this.pending.get(id) as Pending;
      this.pending.delete(id);
      p.resolve(reply);
      return;
    }
    this.idless.shift()?.resolve(reply);
  }

  private fail(e: Error): void {
    if (this.closedError !== null) return;
    this.closedError = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const p of this.idless.splice(0)) p.reject(e);
    for (const w of this.eventWaiters.splice(0)) w(null);
  }

  private request(msg: Record<string, unknown>): Promise<QmpReply> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    const id = `minivm-${this.nextId++}`;
    return new Promise<QmpReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(JSON.stringify({ ...msg, id }) + "\n");
    });
  }

  /** Send any text; resolves with the next reply that has no id (or the reply with this id). */
  sendRaw(text: string, expectReply = true): Promise<QmpReply | null> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    this.socket.write(text);
    if (!expectReply) return Promise.resolve(null);
    return new Promise<QmpReply>((resolve, reject) => this.idless.push({ resolve, reject }));
  }

  /** Send a raw message carrying a chosen id; resolves with the reply echoing it. */
  sendWithId(text: string, id: string): Promise<QmpReply> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    return new Promise<QmpReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(text);
    });
  }

  /** Execute any command and return the whole reply (error or not). */
  executeRaw(name: string, args?: Record<string, unknown>, oob = false): Promise<QmpReply> {
    const msg: Record<string, unknown> = oob ? { "exec-oob": name } : { execute: name };
    if (args !== undefined) msg.arguments = args;
    return this.request(msg);
  }

  async execute<K extends QmpCommandName>(name: K, args?: QmpCommandMap[K]["args"]): Promise<QmpCommandMap[K]["ret"]> {
    return unwrap(await this.executeRaw(name, args as Record<string, unknown> | undefined)) as QmpCommandMap[K]["ret"];
  }

  async execOob<K extends QmpCommandName>(name: K, args?: QmpCommandMap[K]["args"]): Promise<QmpCommandMap[K]["ret"]> {
    return unwrap(await this.executeRaw(name, args as Record<string, unknown> | undefined, true)) as QmpCommandMap[K]["ret"];
  }

  /** The next event (queued or future); null once the connection is gone. */
  nextEvent(): Promise<QmpEvent | null> {
    const e = this.eventQueue.shift();
    if (e !== undefined) return Promise.resolve(e);
    if (this.closedError !== null) return Promise.resolve(null);
    return new Promise((resolve) => this.eventWaiters.push(resolve));
  }

  /** Wait for an event by name, dropping others. */
  async waitEvent(name: string): Promise<QmpEvent> {
    for (;;) {
      const e = await this.nextEvent();
      if (e === null) throw new Error(`connection closed while waiting for event ${name}`);
      if (e.event === name) return e;
    }
  }

  async *events(): AsyncIterableIterator<QmpEvent> {
    for (;;) {
      const e = await this.nextEvent();
      if (e === null) return;
      yield e;
    }
  }

  /** Resolves when the server closes the connection. */
  closed(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once("close", () => resolve()));
  }

  close(): void {
    this.socket.destroy();
  }
}

function unwrap(reply: QmpReply): unknown {
  if ("error" in reply) throw new QmpCommandError(reply.error.class, reply.error.desc);
  return reply.return;
}
