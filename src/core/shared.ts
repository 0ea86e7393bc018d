// The control words of the shared regions (src/core/regions.ts, DESIGN.md §2): one Int32Array
// over a SharedArrayBuffer that the main, monitor and core threads share, every slot accessed
// only with Atomics. Words 0..15 are global; after them come the per-hart blocks, HART_WORDS
// words each, laid out so that a later wave can run one vCPU per worker (QEMU's MTTCG, where
// each CPUState has its own exit_request and interrupt_request). Today only hart 0 exists.
//
//   word                     meaning
//   0                        RUN_STATE
//   1                        reserved (the exit request before it moved into the hart block)
//   2..8                     WAKE, OOB_TEST_SEM, REQUEST, REQUEST_CAUSE, INBAND_DISPATCHED,
//                            OOB_DISPATCHED, INBAND_RUNNING (see CONTROL below)
//   9                        HARTS: how many hart blocks follow (written once, at allocation)
//   10, 11                   MIG_OUT_STATUS, MIG_IN_STATUS: the migrations' status words
//   12                       POSTCOPY_WAITING: the present-bitmap word a vCPU waits on, + 1
//   13..15                   reserved
//   16 + h*16 + HART.*       hart h's block (64 bytes, so that harts do not share a cache line)

/** Words of the global part; hart blocks start here. */
import { MIG_IN_STATUS_WORD, MIG_OUT_STATUS_WORD, POSTCOPY_WAITING_WORD } from "../migration/status-word.js";

export const CONTROL_GLOBAL_WORDS = 16;
/** Words per hart block. */
export const HART_WORDS = 16;

/** Word offsets inside one hart's block. */
export const HART = {
  /** Nonzero asks this hart's vCPU to end its slice at the next instruction boundary (QEMU's cpu_exit). */
  EXIT_REQUEST: 0,
  /**
   * Bumped (and notified) whenever someone kicks this hart: an interrupt posted to it or news
   * for its thread (QEMU's qemu_cpu_kick). A vCPU thread of its own would sleep on it in WFI.
   */
  KICK: 1,
  /** The LR/SC reservation (the address LR.W reserved, or -1), visible to every thread. */
  RESERVATION: 2,
} as const;

export const CONTROL = {
  /** Index into RunState_VALUES; written by the core thread under the BQL, read by anyone. */
  RUN_STATE: 0,
  /** Hart 0's exit request: the one vCPU of today's single-threaded loop. */
  EXIT_REQUEST: CONTROL_GLOBAL_WORDS + HART.EXIT_REQUEST,
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
  /** How many hart blocks the buffer holds. */
  HARTS: 9,
  /**
   * The outgoing and the incoming migration's status, as an index into MigrationStatus_VALUES
   * (src/migration/status-word.ts): written by whichever thread moves it, read by the
   * out-of-band migrate-pause / migrate-recover / query-yank, which may not ask the core.
   */
  MIG_OUT_STATUS: MIG_OUT_STATUS_WORD,
  MIG_IN_STATUS: MIG_IN_STATUS_WORD,
  /**
   * Postcopy: the present-bitmap word a vCPU (or device) waits on, plus one; 0 when none. The
   * receiver thread notifies only when it places a page of that word.
   */
  POSTCOPY_WAITING: POSTCOPY_WAITING_WORD,
} as const;

/** Words of a control buffer with `harts` hart blocks. */
export function controlWords(harts: number): number {
  return CONTROL_GLOBAL_WORDS + harts * HART_WORDS;
}

/** Words of a one-hart control buffer (today's board). */
export const CONTROL_WORDS = controlWords(1);

/** The first word of hart `h`'s block. */
export function hartBase(h: number): number {
  return CONTROL_GLOBAL_WORDS + h * HART_WORDS;
}

export const enum Request {
  None = 0,
  Shutdown = 1,
  Reset = 2,
  Powerdown = 3,
}

export function createControlBuffer(harts = 1): SharedArrayBuffer {
  if (!Number.isInteger(harts) || harts < 1) throw new Error(`a machine needs at least one hart, not ${harts}`);
  const buffer = new SharedArrayBuffer(controlWords(harts) * 4);
  const words = new Int32Array(buffer);
  words[CONTROL.HARTS] = harts;
  for (let h = 0; h < harts; h++) words[hartBase(h) + HART.RESERVATION] = -1;
  return buffer;
}

/** The hart blocks a control array holds (a bare CONTROL_WORDS buffer counts as one). */
function hartsIn(control: Int32Array): number {
  return Math.max(1, Math.min(Atomics.load(control, CONTROL.HARTS), (control.length - CONTROL_GLOBAL_WORDS) / HART_WORDS));
}

/** End hart `h`'s slice and wake it if it sleeps on its own kick word. */
export function kickHart(control: Int32Array, h: number): void {
  const base = hartBase(h);
  Atomics.store(control, base + HART.EXIT_REQUEST, 1);
  Atomics.add(control, base + HART.KICK, 1);
  Atomics.notify(control, base + HART.KICK);
}

/** Wake an idle core thread and end a running slice, so it looks at its messages. */
export function kickCore(control: Int32Array): void {
  const harts = hartsIn(control);
  for (let h = 0; h < harts; h++) kickHart(control, h);
  Atomics.add(control, CONTROL.WAKE, 1);
  Atomics.notify(control, CONTROL.WAKE);
}
