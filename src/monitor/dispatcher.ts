// The in-band dispatcher (QEMU's monitor_qmp_dispatcher_co): one for all monitors. It takes
// the oldest request of one session at a time, round-robin across sessions, has the core
// thread run it under the BQL, sends the reply, and only then takes the next. So in-band
// commands run one at a time, in arrival order per session, fairly across sessions.

import type { ExecResult } from "../core/protocol.js";
import type { QmpSession } from "../qmp/session.js";

export type RunInband = (name: string, args: unknown) => Promise<ExecResult>;

export class InbandDispatcher {
  private readonly sessions: QmpSession[] = [];
  private running = false;

  constructor(private readonly runInband: RunInband) {}

  add(session: QmpSession): void {
    this.sessions.push(session);
  }

  remove(session: QmpSession): void {
    const i = this.sessions.indexOf(session);
    if (i >= 0) this.sessions.splice(i, 1);
  }

  wake(): void {
    if (this.running) return;
    this.running = true;
    void this.run().finally(() => {
      this.running = false;
      // Work may have arrived while the last reply was being sent.
      if (this.sessions.some((s) => s.queue.length > 0)) this.wake();
    });
  }

  /** Pop the next request, rotating the session it came from to the back (round-robin). */
  private next(): { session: QmpSession; taken: NonNullable<ReturnType<QmpSession["takeRequest"]>> } | undefined {
    for (let i = 0; i < this.sessions.length; i++) {
      const session = this.sessions[i] as QmpSession;
      const taken = session.takeRequest();
      if (taken === undefined) continue;
      this.sessions.splice(i, 1);
      this.sessions.push(session);
      return { session, taken };
    }
    return undefined;
  }

  private async run(): Promise<void> {
    for (;;) {
      const n = this.next();
      if (n === undefined) return;
      const { session, taken } = n;
      const step = session.checkInband(taken.request.input);
      if (step.kind === "reply") {
        if (step.reply !== null) session.sendReply(step.reply);
      } else {
        const result = await this.runInband(step.name, step.args);
        // A client that hung up mid-command gets nothing; the command still ran.
        if (!session.closed) step.finish(result);
      }
      if (taken.needResume && !session.closed) session.resume();
    }
  }
}
