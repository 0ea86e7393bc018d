// The VM run state (QEMU's RunState, softmmu/runstate.c): a word in shared memory that any
// thread may read, changed only by the core thread under the BQL along the transitions QEMU
// allows. An illegal transition is a bug in minivm, so it throws.

import { RunState_VALUES, type RunState } from "../qapi/generated/types.js";
import { CONTROL } from "./shared.js";
import { TRACE } from "../trace/events.js";
import { trace } from "../trace/tracer.js";

// QEMU's runstate_transitions_def, grouped by the state left.
const TRANSITIONS: Readonly<Record<RunState, readonly RunState[]>> = {
  debug: ["running", "finish-migrate", "prelaunch", "suspended"],
  inmigrate: [
    "internal-error", "io-error", "paused", "running", "shutdown", "suspended", "watchdog",
    "guest-panicked", "finish-migrate", "prelaunch", "postmigrate", "colo",
  ],
  "internal-error": ["paused", "finish-migrate", "prelaunch"],
  "io-error": ["running", "finish-migrate", "prelaunch"],
  paused: ["running", "finish-migrate", "postmigrate", "prelaunch", "colo"],
  postmigrate: ["running", "finish-migrate", "prelaunch"],
  prelaunch: ["running", "finish-migrate", "inmigrate"],
  "finish-migrate": ["running", "paused", "postmigrate", "prelaunch", "colo"],
  "restore-vm": ["running", "prelaunch"],
  colo: ["running", "prelaunch", "shutdown"],
  running: [
    "debug", "internal-error", "io-error", "paused", "finish-migrate", "restore-vm", "save-vm",
    "shutdown", "watchdog", "guest-panicked", "colo", "suspended",
  ],
  "save-vm": ["running"],
  shutdown: ["paused", "finish-migrate", "prelaunch", "colo"],
  suspended: ["running", "finish-migrate", "prelaunch", "colo"],
  watchdog: ["running", "finish-migrate", "prelaunch", "colo"],
  "guest-panicked": ["running", "finish-migrate", "prelaunch"],
};

export function runStateIndex(state: RunState): number {
  return RunState_VALUES.indexOf(state);
}

/** Read the current run state from the control buffer (lock-free; any thread). */
export function readRunState(control: Int32Array): RunState {
  const s = RunState_VALUES[Atomics.load(control, CONTROL.RUN_STATE)];
  if (s === undefined) throw new Error("corrupt run state word");
  return s;
}

export class RunStateMachine {
  constructor(private readonly control: Int32Array, initial: RunState) {
    Atomics.store(control, CONTROL.RUN_STATE, runStateIndex(initial));
  }

  get state(): RunState {
    return readRunState(this.control);
  }

  is(state: RunState): boolean {
    return this.state === state;
  }

  get running(): boolean {
    return this.state === "running";
  }

  /** QEMU's runstate_needs_reset(): only a reset gets the VM out of these. */
  get needsReset(): boolean {
    const s = this.state;
    return s === "internal-error" || s === "shutdown" || s === "guest-panicked";
  }

  /** QEMU's runstate_set(): a no-op for the same state, otherwise only along a legal transition. */
  set(next: RunState): void {
    const cur = this.state;
    if (cur === next) return;
    if (!TRANSITIONS[cur].includes(next)) {
      throw new Error(`invalid runstate transition: '${cur}' -> '${next}'`);
    }
    Atomics.store(this.control, CONTROL.RUN_STATE, runStateIndex(next));
    trace(TRACE.runstate_changed, runStateIndex(cur), runStateIndex(next));
  }
}
