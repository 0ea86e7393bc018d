// The in-band migration QMP commands (QEMU 7.2's migration/migration.c qmp_* functions) with
// QEMU's checks and words; the work goes to the MigrationEngine. migrate-recover and
// migrate-pause are allow-oob, so they live in core/oob-commands.ts.

import type { QmpHandlers } from "../qapi/generated/commands.js";
import { genericError } from "../qapi/error.js";
import type { RunState } from "../qapi/generated/types.js";
import { parseMigrationUri, UnknownMigrationProtocol, type MigrationUri } from "./channels.js";
import type { MigrationEngine } from "./engine.js";
import { MIGRATION_ACTIVE_ERROR, UNIMPLEMENTED_CAPABILITIES, type MigrationState } from "./state.js";

export type MigrationHandlers = Pick<
  QmpHandlers,
  | "query-migrate"
  | "migrate-set-capabilities"
  | "query-migrate-capabilities"
  | "migrate-set-parameters"
  | "query-migrate-parameters"
  | "migrate-start-postcopy"
  | "migrate_cancel"
  | "migrate-continue"
  | "migrate"
  | "migrate-incoming"
>;

/** What the handlers need from the core thread; types only, so src/migration stays a leaf. */
export interface MigrationContext {
  migration: MigrationState;
  engine: MigrationEngine;
  runState: { readonly state: RunState };
}

/**
 * The URI checked as `migrate` / `migrate-incoming` check it (channels.ts has the one parser):
 * null for a scheme QEMU does not know (each command words that itself), a QmpError with
 * QEMU's words for a known scheme with a malformed address.
 */
function checkUri(uri: string, side: "outgoing" | "incoming"): MigrationUri | null {
  try {
    return parseMigrationUri(uri, side);
  } catch (e) {
    if (e instanceof UnknownMigrationProtocol) return null;
    throw genericError(e instanceof Error ? e.message : String(e));
  }
}

export function migrationHandlers(ctx: MigrationContext): MigrationHandlers {
  const m = ctx.migration;
  return {
    "query-migrate": () => m.queryMigrate(),
    "query-migrate-capabilities": () => m.queryCapabilities(),
    "migrate-set-capabilities": ({ capabilities }) => {
      m.setCapabilities(capabilities);
      return {};
    },
    "query-migrate-parameters": () => m.queryParameters(),
    "migrate-set-parameters": (p) => {
      m.setParameters(p);
      return {};
    },
    "migrate-start-postcopy": () => {
      // QEMU's migrate_postcopy(): postcopy-ram or dirty-bitmaps.
      if (!m.capabilities["postcopy-ram"] && !m.capabilities["dirty-bitmaps"]) {
        throw genericError("Enable postcopy with migrate_set_capability before the start of migration");
      }
      if (m.status === "none") throw genericError("Postcopy must be started after migration has been started");
      // Not an error once the migration has finished: that would race with the command.
      m.startPostcopy = true;
      if (m.running) ctx.engine.startPostcopy(m);
      return {};
    },
    migrate_cancel: () => {
      // QEMU's migrate_fd_cancel(): nothing to do unless a migration runs.
      const s = m.status;
      if (!m.running || s === "cancelling") return {};
      m.transition(s, "cancelling");
      ctx.engine.cancel(m);
      return {};
    },
    "migrate-continue": ({ state }) => {
      if (m.status !== state) throw genericError(`Migration not in expected state: ${m.status}`);
      // QEMU posts its pause semaphore whatever the state; only pre-switchover waits on it.
      if (state === "pre-switchover") ctx.engine.continueFromPreSwitchover(m);
      return {};
    },
    migrate: ({ uri, blk, inc, resume }) => {
      // QEMU 7.2's migrate_prepare(), in its order.
      if (resume === true) {
        if (m.status !== "postcopy-paused") throw genericError("Cannot resume if there is no paused migration");
        if (m.capabilities["release-ram"]) throw genericError("Postcopy recovery cannot work when release-ram capability is set");
        if (checkUri(uri, "outgoing") === null) throw genericError("Parameter 'uri' expects a valid migration protocol");
        ctx.engine.resume(uri, m);
        return {};
      }
      if (m.running) throw genericError(MIGRATION_ACTIVE_ERROR);
      const rs = ctx.runState.state;
      if (rs === "inmigrate") throw genericError("Guest is waiting for an incoming migration");
      if (rs === "postmigrate") throw genericError("Can't migrate the vm that was paused due to previous migration");
      // Shared storage is minivm's only model (and QEMU dropped blk/inc in 9.1).
      if (blk === true || inc === true) throw genericError("minivm does not migrate disk contents: use shared storage");
      m.beginOutgoing(uri);
      let parsed: MigrationUri | null;
      try {
        parsed = checkUri(uri, "outgoing");
      } catch (e) {
        // QEMU's migrate_fd_error(): the reason becomes error-desc too.
        m.fail(e instanceof Error ? e.message : String(e), "setup");
        throw e;
      }
      if (parsed === null) {
        // QEMU fails the migration here without recording why.
        m.transition("setup", "failed");
        throw genericError("Parameter 'uri' expects a valid migration protocol");
      }
      // After the URI, as QEMU meets a missing feature only once it starts the transfer.
      const unsupported = UNIMPLEMENTED_CAPABILITIES.find((c) => m.capabilities[c]);
      if (unsupported !== undefined) {
        const message = `minivm cannot migrate with the '${unsupported}' capability on`;
        m.fail(message, "setup");
        throw genericError(message);
      }
      try {
        ctx.engine.startOutgoing(uri, m);
      } catch (e) {
        m.fail(e instanceof Error ? e.message : String(e), "setup");
        throw e;
      }
      return {};
    },
    "migrate-incoming": ({ uri }) => {
      // QEMU 7.2's qmp_migrate_incoming().
      if (m.incoming.started) throw genericError("The incoming migration has already been started");
      if (ctx.runState.state !== "inmigrate") throw genericError("'-incoming' was not specified on the command line");
      startIncoming(m, ctx.engine, uri);
      return {};
    },
  };
}

/**
 * QEMU's qemu_start_incoming_migration(), for `--incoming URI` at start-up and for
 * migrate-incoming: announces setup, checks the URI, hands it to the engine. On success the
 * incoming migration counts as started, and cannot be started again.
 */
export function startIncoming(m: MigrationState, engine: MigrationEngine, uri: string): void {
  if (uri === "defer") {
    m.incoming.requested = "defer";
    return;
  }
  m.announceIncomingSetup();
  if (checkUri(uri, "incoming") === null) throw genericError(`unknown migration protocol: ${uri}`);
  engine.startIncoming(uri, m);
  m.incoming.started = true;
}
