// The in-band dispatcher (QEMU's monitor_qmp_dispatcher_co): one for all monitors. It takes
// the oldest request of one session at a time, round-robin across sessions, checks it, and
// has the core thread run it under the BQL. The core thread runs what it is sent one at a
// time, in the order sent, so in-band commands still execute strictly in arrival order; the
// dispatcher only keeps a few in flight so that the hop between threads is not paid twice
// per command. Each session's replies go out in its request order.

import type { ExecResult } from "../core/protocol.js";
import type { QmpSession } from "../qmp/session.js";

export type RunInband = (name: string, args: unknown) => Promise<ExecResult>;

/** In-band requests on their way to, or running on, the core thread, over all sessions. */
export const MAX_INFLIGHT = 8;

export class InbandDispatcher {
  private readonly sessions: QmpSession[] = [];
  private inflight = 0;
  private pumping = false;

  constructor(private readonly runInband: RunInband) {}

  add(session: QmpSession): void {
    this.sessions.push(session);
  }

  remove(session: QmpSession): void {
    const i = this.sessions.indexOf(session);
    if (i >= 0) this.sessions.splice(i, 1);
  }

  wake(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inflight < MAX_INFLIGHT) {
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

  private dispatch(session: QmpSession, request: NonNullable<ReturnType<QmpSession["takeRequest"]>>): void {
    const step = session.checkInband(request.input);
    let reply: Promise<Record<string, unknown> | null>;
    if (step.kind === "reply") {
      reply = Promise.resolve(step.reply);
    } else {
      this.inflight++;
      // A client that hung up mid-command gets nothing; the command still runs.
      reply = this.runInband(step.name, step.args)
        .then((res) => step.finish(res))
        .finally(() => {
          this.inflight--;
          this.wake();
        });
    }
    void session.completeRequest(reply).then(() => this.wake());
  }
}
