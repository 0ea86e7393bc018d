// The handlers of every command the schema marks 'allow-oob', defined once for both threads.
// The monitor thread runs them out of band the moment a request with exec-oob is parsed,
// without the BQL; the core thread runs the same functions when the request comes in-band
// with execute (QEMU, too, runs an allow-oob command in the main loop when it is not asked
// for out of band: qapi/qmp-dispatch.c). So this module may import only lock-free shared
// state: the control words, the BQL's read-only view, and the generated types and errors.
// test/monitor/import-closure.test.ts and test/core/handlers.test.ts hold it to that.

import type { QmpCommandMap, QmpOobCommandName } from "../qapi/generated/commands.js";
import type { BqlInfo, MigrationStatus, YankInstance } from "../qapi/generated/types.js";
import { genericError, QmpError } from "../qapi/error.js";
import type { Bql } from "./bql.js";
import { CONTROL } from "./shared.js";
import { TRACE } from "../trace/events.js";
import { trace } from "../trace/tracer.js";

/** What an OOB handler may look at: the BQL is observed, never taken. */
export type BqlView = Pick<Bql, "snapshot">;

/**
 * The running migrations as an out-of-band command reaches them: their status (the shared
 * status words) and their threads (over the monitor links), never the core thread, which may
 * be stuck on a postcopy fault.
 */
export interface MigrationControl {
  status(side: "outgoing" | "incoming"): MigrationStatus;
  /** Shut the side's channel down (qemu_file_shutdown); false when no thread owns one. */
  pause(side: "outgoing" | "incoming"): boolean;
  /** The destination listens again on `uri`; rejects with the reason it cannot. */
  recover(uri: string): Promise<void>;
  /** Sides whose channel can be yanked (a migration thread owns an open channel). */
  yankable(): Array<"outgoing" | "incoming">;
  /** Break the side's channel (yank): as migrate-pause, in any state with a channel. */
  yank(side: "outgoing" | "incoming"): boolean;
}

/** The socket character devices (the QMP monitors) as yank sees them. */
export interface ChardevControl {
  ids(): string[];
  /** Shut the chardev's connected client down; false when there is no such chardev. */
  yank(id: string): boolean;
}

export interface OobContext {
  control: Int32Array;
  bql: BqlView;
  /**
   * True on the monitor thread (exec-oob); false on the core thread, where the command came
   * in-band and runs under the BQL like any other.
   */
  outOfBand: boolean;
  migration: MigrationControl;
  chardevs: ChardevControl;
}

export type OobHandlers = {
  [K in QmpOobCommandName]: (args: QmpCommandMap[K]["args"], ctx: OobContext) => QmpCommandMap[K]["ret"] | Promise<QmpCommandMap[K]["ret"]>;
};

/** x-oob-test's in-band half: block this thread, BQL and all, until the semaphore is posted. */
/** vcpu_blocked's reason for x-oob-test (src/trace/events.ts). */
const BLOCKED_OOB_TEST = 1;

function oobTestWait(control: Int32Array): void {
  for (;;) {
    const v = Atomics.load(control, CONTROL.OOB_TEST_SEM);
    if (v > 0 && Atomics.compareExchange(control, CONTROL.OOB_TEST_SEM, v, v - 1) === v) return;
    if (v <= 0) Atomics.wait(control, CONTROL.OOB_TEST_SEM, v);
  }
}

/** x-oob-test's other half: post the semaphore. Lock-free, so it may run out of band. */
function oobTestPost(control: Int32Array): void {
  Atomics.add(control, CONTROL.OOB_TEST_SEM, 1);
  Atomics.notify(control, CONTROL.OOB_TEST_SEM, 1);
}

/** The BQL's state and statistics in the schema's BqlInfo shape, read without taking it. */
export function bqlInfo(bql: BqlView): BqlInfo {
  const s = bql.snapshot();
  const info: BqlInfo = {
    acquisitions: s.acquisitions,
    contended: s.contended,
    threads: s.threads.map((t) => ({
      thread: t.thread,
      acquisitions: t.acquisitions,
      contended: t.contended,
      "total-hold-ns": t.totalHoldNs,
      "longest-hold-ns": t.longestHoldNs,
      "total-wait-ns": t.totalWaitNs,
    })),
  };
  if (s.holder !== null) info.holder = s.holder;
  if (s.heldNs !== null) info["held-ns"] = s.heldNs;
  return info;
}

export const OOB_HANDLERS: OobHandlers = {
  "x-oob-test": ({ lock }, ctx) => {
    if (!lock) {
      oobTestPost(ctx.control);
      return {};
    }
    // Waiting on the monitor thread would stop the thread that must post the semaphore.
    if (ctx.outOfBand) throw genericError("x-oob-test with lock=true blocks the thread that runs it; run it in-band");
    // The core thread (the vCPU and main loop) stands still, BQL held, until the OOB half.
    trace(TRACE.vcpu_blocked, BLOCKED_OOB_TEST);
    oobTestWait(ctx.control);
    trace(TRACE.vcpu_woken, BLOCKED_OOB_TEST);
    return {};
  },
  "x-query-bql": (_args, ctx) => bqlInfo(ctx.bql),
  // QEMU 7.2's qmp_migrate_recover: only a paused destination listens again.
  "migrate-recover": ({ uri }, ctx) => {
    if (ctx.migration.status("incoming") !== "postcopy-paused") throw genericError("Migrate recover can only be run when postcopy is paused.");
    return ctx.migration.recover(uri).then(() => ({}));
  },
  // QEMU's util/yank.c: every instance checked before any is yanked.
  yank: ({ instances }, ctx) => {
    const present = yankInstances(ctx);
    const key = (i: YankInstance) => JSON.stringify(i.type === "chardev" ? [i.type, i.id] : i.type === "block-node" ? [i.type, i["node-name"]] : [i.type]);
    const known = new Set(present.map(key));
    for (const i of instances) if (!known.has(key(i))) throw new QmpError("DeviceNotFound", "Instance not found");
    for (const i of instances) {
      if (i.type === "chardev") ctx.chardevs.yank(i.id);
      else if (i.type === "migration") for (const side of ctx.migration.yankable()) ctx.migration.yank(side);
    }
    return {};
  },
  "query-yank": (_args, ctx) => yankInstances(ctx),
  // QEMU 7.2's qmp_migrate_pause: the source's channel first, then the destination's.
  "migrate-pause": (_args, ctx) => {
    const m = ctx.migration;
    if (m.status("outgoing") === "postcopy-active") {
      if (!m.pause("outgoing")) throw genericError("Failed to pause source migration");
      return {};
    }
    if (m.status("incoming") === "postcopy-active") {
      if (!m.pause("incoming")) throw genericError("Failed to pause destination migration");
      return {};
    }
    throw genericError("migrate-pause is currently only supported during postcopy-active state");
  },
};

/** QEMU's yank instance list: the socket chardevs, then the migration while it has a channel. */
function yankInstances(ctx: OobContext): YankInstance[] {
  const out: YankInstance[] = ctx.chardevs.ids().map((id) => ({ type: "chardev", id }));
  if (ctx.migration.yankable().length > 0) out.push({ type: "migration" });
  return out;
}

/**
 * Run an allow-oob command on the monitor thread. The name has passed the session's checks,
 * which let only commands with allow-oob through exec-oob, so a miss here is a minivm bug.
 */
export function runOobCommand(name: string, args: unknown, ctx: OobContext): unknown {
  if (!Object.hasOwn(OOB_HANDLERS, name)) throw new Error(`no out-of-band handler for allow-oob command ${name}`);
  const handler = OOB_HANDLERS[name as QmpOobCommandName] as (args: unknown, ctx: OobContext) => unknown;
  return handler(args, ctx);
}
