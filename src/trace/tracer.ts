// This thread's trace emitter. Each thread installs its own once it has the shared regions;
// until then (and in unit tests that build parts alone) every emit is a no-op.

import type { TraceThread } from "./events.js";
import { TRACE_THREADS } from "./events.js";
import { TraceWriter } from "./ring.js";

let current = new TraceWriter(new SharedArrayBuffer(64), 0);

/** Write this thread's events to its ring in the shared trace region. */
export function installTracer(trace: SharedArrayBuffer, thread: TraceThread): void {
  current = new TraceWriter(trace, TRACE_THREADS.indexOf(thread));
}

/** Record a trace event from this thread (see src/trace/events.ts for the ids and arguments). */
export function trace(event: number, a0 = 0, a1 = 0, a2 = 0, a3 = 0): void {
  current.emit(event, a0, a1, a2, a3);
}

/** Whether `event` is being recorded, to skip computing costly arguments. */
export function tracing(event: number): boolean {
  return current.enabled(event);
}
