// The in-band dispatcher (QEMU's monitor_qmp_dispatcher_co): one for all monitors. It takes
// the oldest request of one session at a time, round-robin across sessions, checks it, and
// has the core thread run it under the BQL. The core thread runs what it is sent one at a
// time, in the order sent, so in-band commands still execute strictly in arrival order; the
// dispatcher only keeps a few in flight so that the hop between threads is not paid twice
// per command. Each session's replies go out in its request order.
//
// QEMU's dispatcher runs in the main loop, so while an in-band command holds the main loop
// nothing else in-band is even looked at: not `qmp_capabilities` of a new client either
// (monitor/qmp.c, monitor_qmp_dispatcher_co -> qmp_dispatch; qmp_capabilities has no
// allow-oob). minivm checks requests on the monitor thread, so it waits explicitly: a reply
// made here waits for every command already sent to the core thread, and negotiation stops
// the dispatcher until the core thread is free, then changes the session's state.

import type { ExecResult } from "../core/protocol.js";
import type { QmpSession } from "../qmp/session.js";

export type RunInband = (name: string, args: unknown) => Promise<ExecResult>;

/** In-band requests on their way to, or running on, the core thread, over all sessions. */
export const MAX_INFLIGHT = 8;

export class InbandDispatcher {
  private readonly sessions: QmpSession[] = [];
  private inflight = 0;
  private pumping = false;
  /** Set while a qmp_capabilities waits for the core thread: nothing else is taken. */
  private barrier = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly runInband: RunInband) {}

  add(session: QmpSession): void {
    this.sessions.push(session);
  }

  remove(session: QmpSession): void {
    const i = this.sessions.indexOf(session);
    if (i >= 0) this.sessions.splice(i, 1);
  }

  wake(): void {
    if (this.pumping || this.barrier) return;
    this.pumping = true;
    try {
      while (this.inflight < MAX_INFLIGHT && !this.barrier) {
        const n = this.next();
        if (n === undefined) break;
        this.dispatch(n.session, n.request);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Pop the next request, rotating the session it came from to the back (round-robin). */
  private next(): { session: QmpSession; request: NonNullable<ReturnType<QmpSession["takeRequest"]>> } | undefined {
    for (let i = 0; i < this.sessions.length; i++) {
      const session = this.sessions[i] as QmpSession;
      const request = session.takeRequest();
      if (request === undefined) continue;
      this.sessions.splice(i, 1);
      this.sessions.push(session);
      return { session, request };
    }
    return undefined;
  }

  /** Resolves once no in-band command is on its way to, or running on, the core thread. */
  private idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private dispatch(session: QmpSession, request: NonNullable<ReturnType<QmpSession["takeRequest"]>>): void {
    const input = request.input;
    if (input.kind !== "error" && isCapabilities(input.value)) {
      this.barrier = true;
      const reply = this.idle().then(() => {
        const step = session.checkInband(input);
        return step.kind === "reply" ? step.reply : null;
      });
      void session.completeRequest(reply).then(() => {
        this.barrier = false;
        this.wake();
      });
      return;
    }
    const step = session.checkInband(input);
    let reply: Promise<Record<string, unknown> | null>;
    if (step.kind === "reply") {
      // An error found here still comes from the dispatcher, which a stuck core holds up.
      reply = this.idle().then(() => step.reply);
    } else {
      this.inflight++;
      // A client that hung up mid-command gets nothing; the command still runs.
      reply = this.runInband(step.name, step.args)
        .then((res) => step.finish(res))
        .finally(() => {
          this.inflight--;
          if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
          this.wake();
        });
    }
    void session.completeRequest(reply).then(() => this.wake());
  }
}

function isCapabilities(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as { execute?: unknown }).execute === "qmp_capabilities";
}
