// The trace points, declared once (as QEMU's trace-events files declare theirs): each has a
// name, the thread ring it is written to, and up to four numeric arguments. Emitters index
// this list; readers and exporters name the arguments from it. Strings never go into a ring:
// threads, QMP commands and run states travel as indexes into tables both sides know.

export interface TraceEventSpec {
  readonly name: string;
  readonly args: readonly string[];
  /** One line for `--trace-events help` and the docs. */
  readonly doc: string;
}

export const TRACE_EVENTS = [
  { name: "bql_acquired", args: ["thread", "wait_ns"], doc: "a thread took the big lock, after waiting wait_ns" },
  { name: "bql_released", args: ["thread", "hold_ns"], doc: "a thread let the big lock go, after holding it hold_ns" },
  { name: "qmp_request_received", args: ["monitor", "command", "oob"], doc: "a monitor parsed a request" },
  { name: "qmp_request_queued", args: ["monitor", "command", "queue_len"], doc: "an in-band request waits for the core thread" },
  { name: "qmp_request_dispatched", args: ["monitor", "command", "oob"], doc: "a request starts running (in-band: on the core thread)" },
  { name: "qmp_request_answered", args: ["monitor", "command", "oob", "latency_ns"], doc: "a reply left, latency_ns after the request arrived" },
  { name: "vcpu_slice", args: ["instructions", "duration_ns", "result"], doc: "the vCPU ran a slice; result: 0 budget, 1 exit request, 2 idle, 3 shutdown, 4 reset, 5 debug stop" },
  { name: "vcpu_blocked", args: ["reason"], doc: "the vCPU waits; reason: 0 WFI, 1 x-oob-test, 2 postcopy page, 3 throttle" },
  { name: "vcpu_woken", args: ["reason"], doc: "the vCPU runs again" },
  { name: "migration_pass", args: ["pass", "dirty_pages", "remaining_pages"], doc: "a precopy pass began with a dirty bitmap sync" },
  { name: "migration_page_requested", args: ["page"], doc: "postcopy: the destination asked for a page" },
  { name: "migration_page_received", args: ["page", "latency_ns"], doc: "postcopy: a requested page arrived" },
  { name: "block_request_submitted", args: ["drive", "op", "bytes"], doc: "a guest block request went to the I/O pool; op: 0 read, 1 write, 2 flush, 3 discard, 4 write-zeroes" },
  { name: "block_request_completed", args: ["drive", "op", "bytes", "latency_ns"], doc: "a guest block request completed" },
  { name: "runstate_changed", args: ["from", "to"], doc: "the VM's run state changed (indexes into RunState)" },
] as const satisfies readonly TraceEventSpec[];

export type TraceEventName = (typeof TRACE_EVENTS)[number]["name"];

/** Event ids by name, for emitters: `TRACE.bql_acquired`. */
export const TRACE = Object.fromEntries(TRACE_EVENTS.map((e, i) => [e.name, i])) as { readonly [K in TraceEventName]: number };

/** The producing threads, one ring each. */
export const TRACE_THREADS = ["main", "monitor", "core", "migration"] as const;
export type TraceThread = (typeof TRACE_THREADS)[number];

/**
 * The events a `--trace-events` pattern list selects: comma-separated globs (`*`, `?`) as
 * QEMU's `-trace` takes them, a leading `-` removing matches; empty selects everything.
 */
export function selectEvents(patterns: string): Set<number> {
  const out = new Set<number>();
  const list = patterns.split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (list.length === 0) TRACE_EVENTS.forEach((_, i) => out.add(i));
  for (const p of list) {
    const remove = p.startsWith("-");
    const glob = remove ? p.slice(1) : p;
    const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
    let matched = false;
    TRACE_EVENTS.forEach((e, i) => {
      if (!re.test(e.name)) return;
      matched = true;
      if (remove) out.delete(i);
      else out.add(i);
    });
    if (!matched) throw new Error(`--trace-events: pattern '${glob}' matches no trace event (try --trace-events help)`);
  }
  return out;
}
