// The core thread's main loop (QEMU's main_loop + the vCPU thread, fused into one JS thread):
// run the guest in slices with the BQL held, drop the lock between slices so other threads can
// take it, and between slices handle main-loop requests (shutdown, reset, powerdown) as
// QEMU's main_loop_should_exit() does.

import type { ShutdownCause } from "../qapi/generated/types.js";
import { ShutdownCause_VALUES } from "../qapi/generated/types.js";
import type { Bql } from "./bql.js";
import type { RunStateMachine } from "./runstate.js";
import { CONTROL, Request, kickCore } from "./shared.js";
import { TRACE } from "../trace/events.js";
import { trace } from "../trace/tracer.js";

import type { SliceResult } from "./machine.js";

export type { SliceResult };

/** The guest as the loop sees it; `Machine` implements it. */
export interface GuestEngine {
  runSlice(maxInstructions: number): SliceResult;
  reset(): void;
  /** The guest's clock stands still while the VM is not running (QEMU_CLOCK_VIRTUAL). */
  stopClock(): void;
  startClock(): void;
}

export interface LoopEvents {
  SHUTDOWN(data: { guest: boolean; reason: ShutdownCause }): void;
  RESET(data: { guest: boolean; reason: ShutdownCause }): void;
  POWERDOWN(): void;
  STOP(): void;
  RESUME(): void;
}

export interface CoreLoopOptions {
  control: Int32Array;
  runState: RunStateMachine;
  /** The vCPU's handle on the BQL ("vcpu0"). */
  vcpuBql: Bql;
  /** The main loop's handle on the BQL ("main-loop"). */
  mainBql: Bql;
  engine: GuestEngine | null;
  events: LoopEvents;
  /** QEMU's -no-shutdown: a guest shutdown stops the VM instead of ending the process. */
  noShutdown: boolean;
  /** QEMU's -no-reboot (reboot_action=shutdown). */
  noReboot?: boolean;
  /** Called once when the process should end, with its exit status. */
  onExit(status: number): void | Promise<void>;
  sliceInstructions?: number;
  /** A debugger's breakpoint, watchpoint or step stopped the VM (the GDB stub's stop reply). */
  onDebugStop?(watch: import("./machine.js").DebugWatchHit | null): void;
}

/** vcpu_slice's result argument (src/trace/events.ts). */
const SLICE_RESULT: Record<SliceResult["kind"], number> = { budget: 0, "exit-request": 1, idle: 2, shutdown: 3, reset: 4, debug: 5 };
/** vcpu_blocked's reasons. */
const BLOCKED_WFI = 0;
const BLOCKED_THROTTLE = 3;

/**
 * An idle wait this short blocks the thread on the wake word instead of going back to the
 * event loop: an I/O completion (which does not kick) can be late by at most this much.
 */
const SYNC_SLEEP_MS = 1.5;

/**
 * How much later than the deadline an event-loop timer is asked to fire. Node turns the
 * timeout of Atomics.waitAsync into a libuv timer in whole milliseconds, which fired up to
 * ~0.4 ms before the deadline on a quarter of an idle guest's ticks; each such early wake-up
 * found nothing due and slept again, a second thread wake-up (~40 us of CPU here) for the
 * same tick. Asking for 0.5 ms more makes one wake-up per tick, at the price of timer
 * interrupts ~0.5 ms later than QEMU's (Linux's timer slack is the same trade). The guest's
 * deadlines are absolute, so no tick is lost: its tick count still follows the wall clock.
 */
export const TIMER_SLACK_MS = 0.5;

/** QEMU's CPU_THROTTLE_TIMESLICE_NS, in ms. */
const THROTTLE_TIMESLICE_MS = 10;

/** QEMU's shutdown_caused_by_guest(). */
function causedByGuest(cause: ShutdownCause): boolean {
  return cause === "guest-shutdown" || cause === "guest-reset" || cause === "guest-panic";
}

export class CoreLoop {
  private scheduled = false;
  private idleWaiting = false;
  private exited = false;
  private exitStatus = 0;
  private readonly slice: number;
  /** Slices run, for statistics and tests. */
  slices = 0;
  /** The last slice ended in WFI: the next tick is the vCPU waking (for the trace). */
  private wfiIdle = false;
  /** Auto-converge's CPU throttle, in percent (QEMU's cpu_throttle_set). */
  private throttlePercent = 0;
  /** Where the current throttle timeslice began (ms). */
  private throttleSliceStart = 0;
  /** Times the loop woke from an idle wait (timer, kick or I/O), for statistics and tests. */
  idleWakeups = 0;
  /** The idle wait's continuation, made once: an idle tick allocates no closure. */
  private readonly onIdleWake = (): void => {
    this.idleWaiting = false;
    this.idleWakeups++;
    // Straight on, not through setImmediate: one wake-up of the thread per guest tick.
    if (!this.scheduled) this.tick();
  };

  constructor(private readonly o: CoreLoopOptions) {
    this.slice = o.sliceInstructions ?? 100_000;
  }

  start(): void {
    if (!this.o.runState.running) this.o.engine?.stopClock();
    this.schedule();
  }

  /** Make the loop look at its state again soon (after a command changed it, say). */
  wake(): void {
    kickCore(this.o.control);
    this.schedule();
  }

  /** QEMU's qemu_system_*_request(): recorded now, acted on by the main loop. */
  request(kind: Request, cause: ShutdownCause, exitStatus = 0): void {
    const c = this.o.control;
    // A shutdown outranks a pending reset or powerdown.
    const pending = Atomics.load(c, CONTROL.REQUEST);
    if (pending === Request.Shutdown && kind !== Request.Shutdown) return;
    if (kind === Request.Shutdown) this.exitStatus = exitStatus;
    Atomics.store(c, CONTROL.REQUEST_CAUSE, ShutdownCause_VALUES.indexOf(cause));
    Atomics.store(c, CONTROL.REQUEST, kind);
    this.wake();
  }

  /** QEMU's vm_stop(RUN_STATE_PAUSED)-style stop: only a running VM changes state and says STOP. */
  vmStop(state: "paused" | "shutdown" | "finish-migrate" | "postmigrate" | "debug" = "paused"): void {
    if (!this.o.runState.running) return;
    this.o.runState.set(state);
    this.o.engine?.stopClock();
    this.o.events.STOP();
  }

  /** QEMU's vm_start(): a no-op when already running. */
  vmStart(): void {
    if (this.o.runState.running) return;
    this.o.runState.set("running");
    this.o.engine?.startClock();
    this.o.events.RESUME();
    this.wake();
  }

  /**
   * Throttle the vCPU to (100 - percent)% of the time, as QEMU's cpu_throttle_thread does:
   * after each 10 ms of running it sleeps percent / (100 - percent) of that. 0 turns it off.
   */
  setThrottle(percent: number): void {
    this.throttlePercent = Math.max(0, Math.min(99, percent));
    this.throttleSliceStart = performance.now();
  }

  get throttle(): number {
    return this.throttlePercent;
  }

  private schedule(): void {
    if (this.scheduled || this.exited) return;
    this.scheduled = true;
    setImmediate(() => this.tick());
  }

  private tick(): void {
    this.scheduled = false;
    if (this.exited) return;
    if (this.wfiIdle) {
      this.wfiIdle = false;
      trace(TRACE.vcpu_woken, BLOCKED_WFI);
    }
    const c = this.o.control;
    Atomics.store(c, CONTROL.EXIT_REQUEST, 0);
    if (Atomics.load(c, CONTROL.REQUEST) !== Request.None) {
      this.o.mainBql.with(() => this.processRequests());
      if (this.exited) return;
    }
    const engine = this.o.engine;
    if (!this.o.runState.running || engine === null) {
      // Nothing to execute: sleep until someone has news (a command, a signal, I/O).
      this.idle(null);
      return;
    }
    this.o.vcpuBql.lock();
    let r: SliceResult;
    const t0 = performance.now();
    try {
      r = engine.runSlice(this.slice);
    } finally {
      this.o.vcpuBql.unlock();
    }
    this.slices++;
    trace(TRACE.vcpu_slice, 0, (performance.now() - t0) * 1e6, SLICE_RESULT[r.kind]);
    switch (r.kind) {
      case "budget":
      case "exit-request":
        if (this.throttlePercent > 0 && performance.now() - this.throttleSliceStart >= THROTTLE_TIMESLICE_MS) {
          const p = this.throttlePercent / 100;
          const sleepMs = (THROTTLE_TIMESLICE_MS * p) / (1 - p);
          this.scheduled = true;
          trace(TRACE.vcpu_blocked, BLOCKED_THROTTLE);
          setTimeout(() => {
            trace(TRACE.vcpu_woken, BLOCKED_THROTTLE);
            this.scheduled = false;
            this.throttleSliceStart = performance.now();
            this.tick();
          }, sleepMs);
          break;
        }
        this.schedule();
        break;
      case "idle":
        trace(TRACE.vcpu_blocked, BLOCKED_WFI);
        this.wfiIdle = true;
        this.idle(r.wakeAtNs);
        break;
      case "shutdown":
        this.request(Request.Shutdown, r.reason, r.code);
        break;
      case "reset":
        this.request(Request.Reset, r.reason);
        break;
      case "debug":
        // QEMU's cpu_handle_guest_debug -> vm_stop(RUN_STATE_DEBUG): every vCPU stops, STOP is
        // sent, and the debugger hears about it through its stop listener.
        this.vmStop("debug");
        this.o.onDebugStop?.(r.watch);
        this.schedule();
        break;
    }
  }

  private idle(wakeAtNs: number | null): void {
    if (this.idleWaiting) return;
    const c = this.o.control;
    const gen = Atomics.load(c, CONTROL.WAKE);
    let timeoutMs = Infinity;
    // wakeAtNs is on this thread's performance.now() clock, the one the Machine is given.
    if (wakeAtNs !== null) timeoutMs = Math.max(0, (wakeAtNs - performance.now() * 1e6) / 1e6);
    if (timeoutMs <= SYNC_SLEEP_MS) {
      // An event-loop timer fires up to a millisecond early (libuv measures from the time it
      // cached at the start of the loop turn, in whole ms): waiting again asynchronously for the
      // remainder spun the loop ~9 times per guest tick. The futex behind Atomics.wait keeps
      // ns precision, and a kick (QMP, console input, an interrupt) still ends it at once.
      if (timeoutMs > 0) {
        Atomics.wait(c, CONTROL.WAKE, gen, timeoutMs);
        this.idleWakeups++;
      }
      this.schedule();
      return;
    }
    const w = Atomics.waitAsync(c, CONTROL.WAKE, gen, timeoutMs === Infinity ? Infinity : timeoutMs + TIMER_SLACK_MS);
    if (!w.async) {
      this.schedule();
      return;
    }
    this.idleWaiting = true;
    void w.value.then(this.onIdleWake);
  }

  /**
   * QEMU's main_loop_should_exit(): act on a pending request. The caller holds the BQL.
   * An in-band command that raised a request calls this before its reply goes out, which
   * is the order QEMU 7.2 shows: RESET, POWERDOWN or SHUTDOWN first, then the reply.
   */
  processRequests(): void {
    const c = this.o.control;
    if (Atomics.load(c, CONTROL.REQUEST) === Request.None) return;
    let kind = Atomics.exchange(c, CONTROL.REQUEST, Request.None) as Request;
    const cause = ShutdownCause_VALUES[Atomics.load(c, CONTROL.REQUEST_CAUSE)] ?? "none";
    const rs = this.o.runState;
    // QEMU's qemu_system_reset_request() with reboot_action=shutdown: every reset but a
    // subsystem one is turned into a shutdown with the reset's cause.
    if (kind === Request.Reset && this.o.noReboot === true && cause !== "subsystem-reset") kind = Request.Shutdown;
    switch (kind) {
      case Request.Shutdown:
        this.o.events.SHUTDOWN({ guest: causedByGuest(cause), reason: cause });
        if (this.o.noShutdown && cause !== "host-qmp-quit" && cause !== "host-signal") {
          this.vmStop("shutdown");
          return;
        }
        this.exited = true;
        // Let the reply of the command that asked for this go out first.
        setImmediate(() => void this.o.onExit(this.exitStatus));
        return;
      case Request.Reset:
        this.o.engine?.reset();
        this.o.events.RESET({ guest: causedByGuest(cause), reason: cause });
        if (!rs.running && !rs.is("inmigrate") && !rs.is("finish-migrate")) rs.set("prelaunch");
        return;
      case Request.Powerdown:
        this.o.events.POWERDOWN();
        return;
      case Request.None:
        return;
    }
  }
}
