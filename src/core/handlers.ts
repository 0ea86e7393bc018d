// The one table of QMP command handlers, built on the core thread. Each command of the
// schema has exactly one entry: the allow-oob ones come from ./oob-commands.ts (the same
// functions the monitor thread runs out of band), the rest from the core handlers below,
// the block layer and HMP. In-band commands run with the BQL held (QEMU runs them in the
// main loop under the BQL too); arguments arrive already checked by the generated visitors,
// so the handlers only act. composeCommandTable() refuses a table that disagrees with the
// schema, so the core thread cannot start with a command missing, doubled or misplaced.

import type { CommandSpec, QmpCommandMap, QmpHandlers, QmpOobCommandName } from "../qapi/generated/commands.js";
import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import { QMP_SCHEMA_INFO } from "../qapi/generated/introspect.js";
import { genericError } from "../qapi/error.js";
import { SESSION_COMMANDS, type SessionCommandName } from "../qmp/dispatch.js";
import { createHmpHandlers, type HmpState } from "../hmp/hmp.js";
import { VERSION_INFO } from "../version.js";
import type { BlockHandlers } from "../block/qmp-block.js";
import type { MigrationEngine } from "../migration/engine.js";
import { migrationHandlers, type MigrationHandlers } from "../migration/qmp-migration.js";
import type { MigrationState } from "../migration/state.js";
import type { Bql } from "./bql.js";
import type { ObjectRegistry } from "../crypto/objects.js";
import { objectHandlers, type ObjectHandlers } from "../crypto/qmp-objects.js";
import type { CoreLoop } from "./loop.js";
import type { Machine } from "./machine.js";
import { OOB_HANDLERS, type MigrationControl, type OobContext } from "./oob-commands.js";
import { loadMigrationStatus } from "../migration/status-word.js";
import type { RunStateMachine } from "./runstate.js";
import { Request } from "./shared.js";

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
  /** The VM's migration state (both directions) and the engine that moves the bytes. */
  migration: MigrationState;
  migrationEngine: MigrationEngine;
  /** The images' write access, which a migration source gives up at switchover. */
  block: { inactive(): boolean; activateAll(): Promise<void> };
  /** The QMP monitors' chardevs, for in-band yank (the monitor thread owns their sockets). */
  chardevs: import("./oob-commands.js").ChardevControl;
  /** The user-created objects (-object, object-add): TLS credentials and authz. */
  objects: ObjectRegistry;
}

/** Every command the core thread can run: the whole schema but what the session answers. */
export type InbandCommandName = Exclude<keyof QmpCommandMap, SessionCommandName>;

/** The handlers defined in this file: not the session's, the OOB module's, the block layer's, migration's or HMP's. */
export type CoreHandlers = Omit<
  QmpHandlers,
  SessionCommandName | QmpOobCommandName | keyof BlockHandlers | keyof MigrationHandlers | keyof ObjectHandlers | "human-monitor-command"
>;

/** Run another command of the table from inside a handler (HMP is text over these). */
export type CommandCaller = <K extends InbandCommandName>(name: K, args: QmpCommandMap[K]["args"]) => ReturnType<QmpHandlers[K]>;

/** Where a command's handler is defined. */
export type CommandSource = "oob" | "core" | "block" | "migration" | "objects" | "hmp";

export interface CommandEntry {
  /** The generated registry's entry: allow-oob and the other flags come only from there. */
  readonly spec: CommandSpec;
  readonly source: CommandSource;
  /** The handler as its module defines it, before it is bound to this thread's context. */
  readonly handler: (...args: never[]) => unknown;
  run(args: unknown): unknown;
}

export type CommandTable = ReadonlyMap<string, CommandEntry>;

/** A group of in-band handlers and the module they come from. */
export interface CommandPart {
  source: Exclude<CommandSource, "oob">;
  handlers: Readonly<Record<string, (args: never) => unknown>>;
}

function isSessionCommand(name: string): boolean {
  return (SESSION_COMMANDS as readonly string[]).includes(name);
}

/**
 * Build the table: every allow-oob command from the lock-free OOB module, bound to `oob`,
 * and the in-band parts. Throws when a command of the schema has no handler or two, when
 * an in-band part defines an allow-oob command or the OOB module one that is not, and when
 * a handler names a command the schema does not have.
 */
export function composeCommandTable(oob: OobContext, parts: readonly CommandPart[]): CommandTable {
  const table = new Map<string, CommandEntry>();
  const add = (name: string, source: CommandSource, handler: (...args: never[]) => unknown, run: (args: unknown) => unknown): void => {
    const spec = QMP_COMMANDS.get(name);
    if (spec === undefined) throw new Error(`${source} handler for ${name}, a command the schema does not define`);
    if (isSessionCommand(name)) throw new Error(`${source} handler for ${name}, which the QMP session answers itself`);
    if (spec.allowOob && source !== "oob") {
      throw new Error(`${name} is allow-oob in the schema, so its handler belongs in oob-commands.ts, not in ${source}`);
    }
    if (!spec.allowOob && source === "oob") throw new Error(`oob-commands.ts defines ${name}, which the schema does not mark allow-oob`);
    const other = table.get(name);
    if (other !== undefined) throw new Error(`${name} has two handlers, from ${other.source} and from ${source}`);
    table.set(name, { spec, source, handler, run });
  };
  for (const [name, handler] of Object.entries(OOB_HANDLERS)) {
    const h = handler as (args: unknown, ctx: OobContext) => unknown;
    add(name, "oob", handler, (args) => h(args, oob));
  }
  for (const part of parts) {
    for (const [name, handler] of Object.entries(part.handlers)) {
      add(name, part.source, handler, handler as (args: unknown) => unknown);
    }
  }
  const missing = [...QMP_COMMANDS.keys()].filter((name) => !table.has(name) && !isSessionCommand(name));
  if (missing.length > 0) throw new Error(`no handler for ${missing.join(", ")}`);
  return table;
}

export function createCoreHandlers(ctx: CoreContext): CoreHandlers {
  return {
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
      if (ctx.runState.is("inmigrate")) ctx.migration.incoming.autostart = false;
      else ctx.loop.vmStop("paused");
      return {};
    },
    cont: () => {
      const rs = ctx.runState;
      if (rs.needsReset) throw genericError("Resetting the Virtual Machine is required");
      if (rs.is("suspended")) return {};
      if (rs.is("finish-migrate")) throw genericError("Migration is not finalized yet");
      // QEMU 7.2's qmp_cont: a destination still waiting for its stream only remembers to
      // start when the migration completes. A 'postmigrate' source may be continued (QEMU
      // reactivates its disks first), as may 'paused' after a failed migration.
      if (rs.is("inmigrate")) {
        ctx.migration.incoming.autostart = true;
        return {};
      }
      // After a completed migration the images were handed to the destination: take them back
      // first (QEMU's bdrv_activate_all in qmp_cont), or refuse with the lock's error.
      if (ctx.block.inactive()) {
        return ctx.block.activateAll().then(() => {
          ctx.bql.with(() => ctx.loop.vmStart());
          return {};
        });
      }
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
    "query-cpus-fast": () =>
      ctx.machine === null
        ? []
        : [{ "cpu-index": 0, "qom-path": "/machine/soc0/harts[0]", "thread-id": ctx.coreThreadId, props: { "core-id": 0 }, target: "riscv32" }],
  };
}

/** The core thread's table: the OOB module bound in-band, the core handlers, the block layer and HMP. */
export function createCommandTable(block: BlockHandlers, ctx: CoreContext): CommandTable {
  const call: CommandCaller = (name, args) => (table.get(name) as CommandEntry).run(args) as ReturnType<QmpHandlers[typeof name]>;
  const links = ctx.migrationEngine.links;
  const migration: MigrationControl = {
    status: (side) => loadMigrationStatus(ctx.control, side),
    pause: (side) => links?.pause(side) ?? false,
    recover: (uri) => links?.recover(uri) ?? Promise.reject(genericError("Migrate recover can only be run when postcopy is paused.")),
    yankable: () => links?.yankable() ?? [],
    yank: (side) => links?.yank(side) ?? false,
  };
  const table = composeCommandTable({ control: ctx.control, bql: ctx.bql, outOfBand: false, migration, chardevs: ctx.chardevs }, [
    { source: "core", handlers: createCoreHandlers(ctx) },
    { source: "block", handlers: block },
    { source: "migration", handlers: migrationHandlers({ migration: ctx.migration, engine: ctx.migrationEngine, runState: ctx.runState }) },
    { source: "objects", handlers: objectHandlers(ctx.objects) },
    { source: "hmp", handlers: createHmpHandlers({ ...ctx, call }) },
  ]);
  return table;
}
