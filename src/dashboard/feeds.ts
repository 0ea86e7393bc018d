// What the dashboard streams to its pages, all read without the BQL: the trace rings (drained
// by a TraceReader of its own, beside any --trace export), who holds the BQL now (its shared
// bookkeeping), the dirty and present page bitmaps, and, over the dashboard's own QMP
// connection, query-migrate and query-blockstats plus the commands the page's buttons send.

import { QmpClient, type QmpReply } from "../qmp/client.js";
import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import { RunState_VALUES } from "../qapi/generated/types.js";
import { Bql } from "../core/bql.js";
import { controlView, type SharedRegions } from "../core/regions.js";
import { loadMigrationStatus } from "../migration/status-word.js";
import { TRACE_EVENTS, TRACE_THREADS } from "../trace/events.js";
import { TraceReader } from "../trace/ring.js";

/** What a page sends: console input, or a QMP command to run (in-band or out-of-band). */
export type ClientMessage =
  | { t: "input"; data: string }
  | { t: "qmp"; id: number; execute: string; arguments?: Record<string, unknown>; oob?: boolean };

/** The page's copy of a command it asked for: exactly what went on the wire, and the reply. */
export interface QmpExchange {
  t: "qmp";
  id: number;
  sent: string;
  reply: QmpReply | { error: { class: string; desc: string } };
}

export type ServerMessage =
  | { t: "hello"; events: string[]; threads: readonly string[]; commands: string[]; runStates: readonly string[]; ramPages: number }
  /** Trace records flattened, 7 numbers each: ring, event, time (ms since the epoch), 4 args. */
  | { t: "trace"; now: number; records: number[]; bql: { holder: string | null; names: string[] }; missed: number }
  /** The bitmaps, and both migrations' status words (read without the lock, unlike query-migrate). */
  | { t: "pages"; dirty: string; present: string; outgoing: string; incoming: string }
  | { t: "migrate"; info: unknown }
  | { t: "blockstats"; stats: unknown }
  | { t: "qmp-state"; connected: boolean; error?: string };

const TRACE_PERIOD_MS = 50;
const PAGES_PERIOD_MS = 250;
const QUERY_PERIOD_MS = 1000;

export class DashboardFeeds {
  private readonly reader: TraceReader;
  private readonly bql: Bql;
  private client: QmpClient | null = null;
  private qmpError: string | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private active = false;
  private stopped = false;
  /** One poll of each kind in flight at most: a stuck main loop must not pile them up. */
  private readonly polling = new Set<string>();

  constructor(
    private readonly regions: SharedRegions,
    private readonly qmpPath: string,
    private readonly send: (msg: ServerMessage) => void,
  ) {
    this.reader = new TraceReader(regions.trace);
    // The observer handle only reads the bookkeeping (snapshot); it never acquires.
    this.bql = new Bql(regions.bql, "observer");
    const every = (ms: number, f: () => void): void => {
      const t = setInterval(f, ms);
      t.unref();
      this.timers.push(t);
    };
    every(TRACE_PERIOD_MS, () => this.pushTrace());
    every(PAGES_PERIOD_MS, () => this.active && this.pushPages());
    every(QUERY_PERIOD_MS, () => this.active && this.pollQueries());
  }

  hello(): ServerMessage {
    return {
      t: "hello",
      events: TRACE_EVENTS.map((e) => e.name),
      threads: TRACE_THREADS,
      commands: [...QMP_COMMANDS.keys()],
      runStates: RunState_VALUES,
      ramPages: Math.ceil(this.regions.ramSize / 4096),
    };
  }

  /** While no page is open only the trace keeps being drained, so a new page starts fresh. */
  setActive(active: boolean): void {
    this.active = active;
    if (active) {
      this.send({ t: "qmp-state", connected: this.client !== null, ...(this.qmpError === null ? {} : { error: this.qmpError }) });
      this.pushPages();
      this.pollQueries();
    }
  }

  connect(): void {
    QmpClient.connect({ kind: "unix", path: this.qmpPath }).then(
      (c) => {
        if (this.stopped) {
          c.close();
          return;
        }
        this.client = c;
        this.send({ t: "qmp-state", connected: true });
        void c.closed().then(() => {
          this.client = null;
          this.send({ t: "qmp-state", connected: false });
        });
      },
      (e: unknown) => {
        this.qmpError = e instanceof Error ? e.message : String(e);
        this.send({ t: "qmp-state", connected: false, error: this.qmpError });
      },
    );
  }

  async runQmp(msg: Extract<ClientMessage, { t: "qmp" }>): Promise<QmpExchange> {
    const wire: Record<string, unknown> = msg.oob === true ? { "exec-oob": msg.execute } : { execute: msg.execute };
    if (msg.arguments !== undefined) wire.arguments = msg.arguments;
    const sent = JSON.stringify(wire);
    if (this.client === null) return { t: "qmp", id: msg.id, sent, reply: { error: { class: "GenericError", desc: "the dashboard has no QMP connection" } } };
    try {
      // The client numbers its requests itself; the page shows the exchange without that id.
      const { id: _ignored, ...reply } = await this.client.executeRaw(msg.execute, msg.arguments, msg.oob === true);
      return { t: "qmp", id: msg.id, sent, reply };
    } catch (e) {
      return { t: "qmp", id: msg.id, sent, reply: { error: { class: "GenericError", desc: e instanceof Error ? e.message : String(e) } } };
    }
  }

  private pushTrace(): void {
    const recs = this.reader.drain();
    if (!this.active) return;
    const flat: number[] = [];
    for (const r of recs) flat.push(r.thread, r.event, r.timeMs, ...r.args);
    const snap = this.bql.snapshot();
    this.send({
      t: "trace",
      now: performance.timeOrigin + performance.now(),
      records: flat,
      bql: { holder: snap.holder, names: snap.threads.map((t) => t.thread) },
      missed: this.reader.missed,
    });
  }

  private pushPages(): void {
    const control = controlView(this.regions);
    this.send({
      t: "pages",
      dirty: Buffer.from(this.regions.dirty).toString("base64"),
      present: Buffer.from(this.regions.present).toString("base64"),
      outgoing: loadMigrationStatus(control, "outgoing"),
      incoming: loadMigrationStatus(control, "incoming"),
    });
  }

  private pollQueries(): void {
    this.poll("query-migrate", (info) => this.send({ t: "migrate", info }));
    this.poll("query-blockstats", (stats) => this.send({ t: "blockstats", stats }));
  }

  private poll(command: string, deliver: (value: unknown) => void): void {
    const c = this.client;
    if (c === null || this.polling.has(command)) return;
    this.polling.add(command);
    c.executeRaw(command).then(
      (r) => {
        this.polling.delete(command);
        if ("return" in r && this.active) deliver(r.return);
      },
      () => this.polling.delete(command),
    );
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.client?.close();
    this.client = null;
  }
}
