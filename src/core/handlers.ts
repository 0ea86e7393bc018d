// The in-band QMP commands, as they run on the core thread with the BQL held (QEMU runs
// them in the main loop under the BQL too). Arguments arrive already checked by the
// generated visitors; these functions only act.

import type { QmpHandlers } from "../qapi/generated/commands.js";
import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import { QMP_SCHEMA_INFO } from "../qapi/generated/introspect.js";
import type { BqlInfo } from "../qapi/generated/types.js";
import { genericError } from "../qmp/errors.js";
import { runHmp, type HmpState } from "../monitor/hmp.js";
import { VERSION_INFO } from "../version.js";
import type { BlockHandlers } from "../block/qmp-block.js";
import type { Bql } from "./bql.js";
import type { CoreLoop } from "./loop.js";
import type { Machine } from "./machine.js";
import type { RunStateMachine } from "./runstate.js";
import { CONTROL, Request } from "./shared.js";

export interface CoreContext {
  control: Int32Array;
  runState: RunStateMachine;
  loop: CoreLoop;
  bql: Bql;
  name: string | undefined;
  machine: Machine | null;
  /** The host thread id of the core thread, which runs the vCPU (Linux tid). */
  coreThreadId: number;
  hmpState: HmpState;
}

export type CoreHandlers = Omit<QmpHandlers, "qmp_capabilities">;

/** x-oob-test's in-band half: block this thread, BQL and all, until the semaphore is posted. */
export function oobTestWait(control: Int32Array): void {
  for (;;) {
    const v = Atomics.load(control, CONTROL.OOB_TEST_SEM);
    if (v > 0 && Atomics.compareExchange(control, CONTROL.OOB_TEST_SEM, v, v - 1) === v) return;
    if (v <= 0) Atomics.wait(control, CONTROL.OOB_TEST_SEM, v);
  }
}

/** x-oob-test's out-of-band half (also usable in-band): post the semaphore. Lock-free. */
export function oobTestPost(control: Int32Array): void {
  Atomics.add(control, CONTROL.OOB_TEST_SEM, 1);
  Atomics.notify(control, CONTROL.OOB_TEST_SEM, 1);
}

export function bqlInfo(bql: Bql): BqlInfo {
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

export function createCoreHandlers(block: BlockHandlers, ctx: CoreContext): CoreHandlers {
  const handlers: CoreHandlers = {
    ...block,
    "query-version": () => structuredClone(VERSION_INFO),
    "query-commands": () => [...QMP_COMMANDS.keys()].map((name) => ({ name })),
    "query-qmp-schema": () => QMP_SCHEMA_INFO as ReturnType<QmpHandlers["query-qmp-schema"]>,
    "query-status": () => ({
      running: ctx.runState.running,
      singlestep: false,
      status: ctx.runState.state,
    }),
    "query-name": () => (ctx.name === undefined ? {} : { name: ctx.name }),
    stop: () => {
      // QEMU's qmp_stop: during incoming migration it only cancels autostart.
      ctx.loop.vmStop("paused");
      return {};
    },
    cont: () => {
      const rs = ctx.runState;
      if (rs.needsReset) throw genericError("Resetting the Virtual Machine is required");
      if (rs.is("suspended")) return {};
      if (rs.is("finish-migrate")) throw genericError("Migration is not finalized yet");
      ctx.loop.vmStart();
      return {};
    },
    system_reset: () => {
      ctx.loop.request(Request.Reset, "host-qmp-system-reset");
      return {};
    },
    system_powerdown: () => {
      ctx.loop.request(Request.Powerdown, "none");
      return {};
    },
    quit: () => {
      ctx.loop.request(Request.Shutdown, "host-qmp-quit");
      return {};
    },
    "x-oob-test": ({ lock }) => {
      if (lock) oobTestWait(ctx.control);
      else oobTestPost(ctx.control);
      return {};
    },
    "x-query-bql": () => bqlInfo(ctx.bql),
    "query-cpus-fast": () =>
      ctx.machine === null
        ? []
        : [{ "cpu-index": 0, "qom-path": "/machine/soc0/harts[0]", "thread-id": ctx.coreThreadId, props: { "core-id": 0 }, target: "riscv32" }],
    "human-monitor-command": ({ "command-line": line }) => runHmp(line, { ...ctx, handlers }),
  };
  return handlers;
}
