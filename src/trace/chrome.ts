// `minivm run --trace FILE`: the trace rings drained into Chrome's trace-event JSON (the
// object form, {"traceEvents": [...]}), which Perfetto's UI and chrome://tracing open, with a
// track per thread: the BQL's holders, the vCPU, the monitor, the migration thread, block I/O.
// The file is written as the run goes, so a run that is killed still leaves most of it (both
// viewers accept a trace-event array without its closing brackets).

import { closeSync, openSync, writeSync } from "node:fs";
import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import { RunState_VALUES } from "../qapi/generated/types.js";
import { TRACE, TRACE_EVENTS } from "./events.js";
import { TraceReader, type TraceRecord } from "./ring.js";

const COMMANDS = [...QMP_COMMANDS.keys()];
const BLOCK_OPS = ["read", "write", "flush", "discard", "write-zeroes"];
const BLOCKED = ["WFI", "x-oob-test", "postcopy page", "throttle"];

interface ChromeEvent {
  name: string;
  ph: "X" | "i" | "B" | "E" | "M";
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: "t";
  args?: Record<string, unknown>;
}

/** Converts ring records to Chrome events; `bqlNames` maps BQL slots to thread names. */
export class ChromeTraceConverter {
  private readonly tids = new Map<string, number>();
  readonly metadata: ChromeEvent[] = [];

  constructor(
    private readonly originMs: number,
    private readonly bqlNames: () => string[],
    private readonly pid = process.pid,
  ) {}

  private tid(track: string): number {
    let t = this.tids.get(track);
    if (t === undefined) {
      t = this.tids.size + 1;
      this.tids.set(track, t);
      this.metadata.push({ name: "thread_name", ph: "M", ts: 0, pid: this.pid, tid: t, args: { name: track } });
    }
    return t;
  }

  private us(ms: number): number {
    return Math.round((ms - this.originMs) * 1000 * 10) / 10;
  }

  convert(r: TraceRecord): ChromeEvent[] {
    const [a0, a1, a2, a3] = r.args;
    const span = (track: string, name: string, durNs: number, args?: Record<string, unknown>): ChromeEvent => ({
      name,
      ph: "X",
      ts: this.us(r.timeMs - durNs / 1e6),
      dur: Math.max(0, Math.round(durNs / 100) / 10),
      pid: this.pid,
      tid: this.tid(track),
      ...(args ? { args } : {}),
    });
    const instant = (track: string, name: string, args?: Record<string, unknown>): ChromeEvent => ({
      name,
      ph: "i",
      s: "t",
      ts: this.us(r.timeMs),
      pid: this.pid,
      tid: this.tid(track),
      ...(args ? { args } : {}),
    });
    const bqlThread = (slot: number): string => `BQL: ${this.bqlNames()[slot] ?? `thread ${slot}`}`;
    switch (r.event) {
      case TRACE.bql_acquired:
        return a1 > 0 ? [span(bqlThread(a0), "waiting for the BQL", a1)] : [];
      case TRACE.bql_released:
        return [span(bqlThread(a0), "holds the BQL", a1)];
      case TRACE.qmp_request_answered: {
        const name = COMMANDS[a1] ?? `command ${a1}`;
        return [span(a2 ? "QMP out-of-band" : "QMP in-band", name, a3, { monitor: a0, oob: a2 === 1 })];
      }
      case TRACE.qmp_request_received:
      case TRACE.qmp_request_queued:
      case TRACE.qmp_request_dispatched:
        return [instant(a2 === 1 && r.event !== TRACE.qmp_request_queued ? "QMP out-of-band" : "QMP in-band", `${TRACE_EVENTS[r.event].name.slice(12)} ${COMMANDS[a1] ?? a1}`)];
      case TRACE.vcpu_slice:
        return [span("vCPU 0", "runs", a1, { result: ["budget", "exit request", "idle", "shutdown", "reset"][a2] })];
      case TRACE.vcpu_blocked:
        return [{ name: `blocked: ${BLOCKED[a0] ?? a0}`, ph: "B", ts: this.us(r.timeMs), pid: this.pid, tid: this.tid("vCPU 0") }];
      case TRACE.vcpu_woken:
        return [{ name: `blocked: ${BLOCKED[a0] ?? a0}`, ph: "E", ts: this.us(r.timeMs), pid: this.pid, tid: this.tid("vCPU 0") }];
      case TRACE.migration_pass:
        return [instant("migration", `pass ${a0}`, { dirty_pages: a1, remaining_pages: a2 })];
      case TRACE.migration_page_requested:
      case TRACE.migration_page_received:
        return [instant("migration", TRACE_EVENTS[r.event].name, { page: a0 })];
      case TRACE.block_request_submitted:
        return [instant(`block: drive ${a0}`, `submit ${BLOCK_OPS[a1] ?? a1}`, { bytes: a2 })];
      case TRACE.block_request_completed:
        return [span(`block: drive ${a0}`, BLOCK_OPS[a1] ?? `op ${a1}`, a3, { bytes: a2 })];
      case TRACE.runstate_changed:
        return [instant("run state", RunState_VALUES[a1] ?? `state ${a1}`, { from: RunState_VALUES[a0] ?? a0 })];
      default:
        return [];
    }
  }
}

/** Drains `trace` into `path` every `periodMs` until stop(). */
export function startChromeTrace(trace: SharedArrayBuffer, path: string, bqlNames: () => string[], periodMs = 100): { stop(): number } {
  const fd = openSync(path, "w");
  const reader = new TraceReader(trace);
  const conv = new ChromeTraceConverter(performance.timeOrigin + performance.now(), bqlNames);
  let first = true;
  let metaWritten = 0;
  writeSync(fd, '{"displayTimeUnit": "ms", "traceEvents": [\n');
  const flush = (): void => {
    const events: ChromeEvent[] = [];
    for (const r of reader.drain()) events.push(...conv.convert(r));
    const meta = conv.metadata.slice(metaWritten);
    metaWritten = conv.metadata.length;
    const all = [...meta, ...events];
    if (all.length === 0) return;
    writeSync(fd, (first ? "" : ",\n") + all.map((e) => JSON.stringify(e)).join(",\n"));
    first = false;
  };
  const timer = setInterval(flush, periodMs);
  timer.unref();
  return {
    stop(): number {
      clearInterval(timer);
      flush();
      writeSync(fd, `\n], "otherData": {"missed_events": ${reader.missed}}}\n`);
      closeSync(fd);
      return reader.missed;
    },
  };
}
