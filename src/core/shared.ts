// The documented layout of the control SharedArrayBuffer that the main, monitor and core
// threads share (DESIGN.md §2). Everything else belongs to one thread and is reached through
// messages. Each slot is an Int32 word accessed only with Atomics.

export const CONTROL = {
  /** Index into RunState_VALUES; written by the core thread under the BQL, read by anyone. */
  RUN_STATE: 0,
  /** Nonzero asks the vCPU to end its slice at the next instruction boundary (QEMU's cpu_exit). */
  EXIT_REQUEST: 1,
  /** Counts wake-ups of an idle core thread; bumped and notified by anyone with news for it. */
  WAKE: 2,
  /** x-oob-test's semaphore: the locked in-band command waits here, the OOB one posts it. */
  OOB_TEST_SEM: 3,
  /** A request for the core's main loop, as a Request code (QEMU's qemu_system_*_request). */
  REQUEST: 4,
  /** The ShutdownCause index that goes with REQUEST. */
  REQUEST_CAUSE: 5,
  /** Statistics, for x-query-bql and the dashboard. */
  INBAND_DISPATCHED: 6,
  OOB_DISPATCHED: 7,
  /** Nonzero while an in-band command is executing on the core thread. */
  INBAND_RUNNING: 8,
} as const;

export const CONTROL_WORDS = 16;

export const enum Request {
  None = 0,
  Shutdown = 1,
  Reset = 2,
  Powerdown = 3,
}

export function createControlBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL_WORDS * 4);
}

/** Wake an idle core thread and end a running slice, so it looks at its messages. */
export function kickCore(control: Int32Array): void {
  Atomics.store(control, CONTROL.EXIT_REQUEST, 1);
  Atomics.add(control, CONTROL.WAKE, 1);
  Atomics.notify(control, CONTROL.WAKE);
}
