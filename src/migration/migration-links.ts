// The monitor thread's view of the running migrations, for the out-of-band commands that act
// on them (migrate-pause, migrate-recover, yank): the status words in shared memory, and one
// MessagePort per migration thread (handed over by the core thread when it starts one). The
// destination's MIGRATION events come back over the same port, so they reach clients while
// the core thread is stuck on a postcopy fault.

import type { MessagePort } from "node:worker_threads";
import type { MigrationStatus } from "../qapi/generated/types.js";
import { genericError } from "../qapi/error.js";
import type { MigrationToMonitor, MonitorToMigration } from "./protocol.js";
import { loadMigrationStatus, type MigrationSide } from "./status-word.js";

export type MigrationEventSink = (event: string, data: Record<string, unknown>, timestamp: { seconds: number; microseconds: number }) => void;

export class MigrationLinks {
  private readonly ports = new Map<MigrationSide, MessagePort>();
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  constructor(
    private readonly control: Int32Array,
    private readonly onEvent: MigrationEventSink,
  ) {}

  /** A migration thread's link arrived; it replaces the side's previous one. */
  attach(side: MigrationSide, port: MessagePort): void {
    this.ports.get(side)?.close();
    this.ports.set(side, port);
    port.on("message", (m: MigrationToMonitor) => {
      if (m.kind === "event") this.onEvent(m.event, m.data, m.timestamp);
      else if (m.kind === "reply") {
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (w === undefined) return;
        if (m.error === undefined) w.resolve();
        else w.reject(genericError(m.error));
      }
    });
    // A link must not keep the monitor thread alive.
    port.unref();
  }

  status(side: MigrationSide): MigrationStatus {
    return loadMigrationStatus(this.control, side);
  }

  private send(side: MigrationSide, m: MonitorToMigration): boolean {
    const port = this.ports.get(side);
    if (port === undefined) return false;
    port.postMessage(m);
    return true;
  }

  pause(side: MigrationSide): boolean {
    return this.send(side, { kind: "pause" });
  }

  recover(uri: string): Promise<void> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (!this.send("incoming", { kind: "recover", id, uri })) {
        this.waiting.delete(id);
        reject(genericError("Migrate recover can only be run when postcopy is paused."));
      }
    });
  }

  yankable(): MigrationSide[] {
    const out: MigrationSide[] = [];
    for (const side of ["outgoing", "incoming"] as const) {
      if (this.ports.has(side) && channelOpen(this.status(side))) out.push(side);
    }
    return out;
  }

  yank(side: MigrationSide): boolean {
    return this.send(side, { kind: "yank" });
  }
}

/** States in which a migration thread holds a channel that yank can break (QEMU registers the
 * migration yank instance while its channels exist, paused postcopy included). */
export function channelOpen(s: MigrationStatus): boolean {
  return s === "setup" || s === "active" || s === "pre-switchover" || s === "device" || s === "postcopy-active" || s === "postcopy-recover";
}
