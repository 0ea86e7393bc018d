// The boundary between the migration QMP surface (qmp-migration.ts) and the engine that moves
// the bytes (the precopy worker, channels, stream). The handlers check the request and the
// state in QEMU's words, then hand over here; the engine drives MigrationState's status with
// transition() and fills its counters. Every method is called on the core thread with the
// BQL held and must return quickly: the work itself happens off the core thread or later.

import type { MigrationState } from "./state.js";
import type { MigrationLinks } from "./migration-links.js";

export interface MigrationEngine {
  /**
   * The core thread's links to the migration threads, for allow-oob migration commands sent
   * in-band (the monitor thread has links of its own for exec-oob). Null without threads.
   */
  readonly links: MigrationLinks | null;

  /**
   * Start an outgoing migration to `uri`. The handler has checked the URI's scheme and form
   * (parseMigrationUri), that no migration is running, and has already called
   * `state.beginOutgoing(uri)`, so the status is `setup`. From here the engine owns the status:
   * it connects, moves `setup` -> `active`, runs passes (`state.passStarted()` per bitmap sync),
   * stops the VM (`finish-migrate`), honours `pause-before-switchover` (`pre-switchover`, then
   * waits for continueFromPreSwitchover), and ends in `completed` (runstate `postmigrate`) or
   * `failed` via `state.fail(message)` (the guest runs on as before). A connection that fails
   * is reported that way too, not by throwing: QEMU's `migrate` has already returned.
   * Throwing here is only for a failure QEMU reports synchronously; the handler then marks
   * the migration failed with the message.
   */
  startOutgoing(uri: string, state: MigrationState): void;

  /**
   * Start listening for (or reading) an incoming migration on `uri`, from `--incoming URI` at
   * start-up or from `migrate-incoming` after `--incoming defer`. The runstate is `inmigrate`.
   * The engine moves `state.incoming.status` (`setup` when the stream arrives, `active`,
   * `completed` or `failed`) with `state.transitionIncoming`, and when the load completes
   * starts the guest if `state.incoming.autostart`, or leaves it paused. Throw a QmpError with
   * QEMU's words when the URI cannot be listened on at all (bind failure, say): migrate-incoming
   * reports it and may be retried.
   */
  startIncoming(uri: string, state: MigrationState): void;

  /**
   * `migrate_cancel` of a running outgoing migration. The handler has already moved the
   * status to `cancelling` (QEMU's migrate_fd_cancel does the same before shutting the
   * channel); the engine closes the channel, makes sure the guest runs again if it had
   * stopped it, and moves `cancelling` -> `cancelled`.
   */
  cancel(state: MigrationState): void;

  /**
   * `migrate-continue` from `pre-switchover`: the handler has checked the status; the engine
   * moves to `device` and sends the device state.
   */
  continueFromPreSwitchover(state: MigrationState): void;

  /** migrate-start-postcopy accepted while a migration runs: switch at the next iteration. */
  startPostcopy(state: MigrationState): void;

  /** `migrate` with `resume: true` from postcopy-paused: reconnect to `uri` and recover. */
  resume(uri: string, state: MigrationState): void;
}

/**
 * An engine that moves no bytes: for tests of the QMP surface and until the real engine is
 * plugged in. It only plays the status transitions a real engine would at each call, so the
 * states, events and query-migrate shapes can be checked. Every call is recorded.
 */
export class StubMigrationEngine implements MigrationEngine {
  readonly links = null;
  readonly calls: Array<{ method: keyof MigrationEngine; uri?: string }> = [];

  /** What startOutgoing does: "fail" (as a refused connection does), or "hold" in setup. */
  constructor(private readonly outgoing: "fail" | "hold" = "fail") {}

  startOutgoing(uri: string, state: MigrationState): void {
    this.calls.push({ method: "startOutgoing", uri });
    if (this.outgoing === "fail") state.fail("minivm has no migration engine in this build", "setup");
  }

  startIncoming(uri: string, _state: MigrationState): void {
    this.calls.push({ method: "startIncoming", uri });
  }

  cancel(state: MigrationState): void {
    this.calls.push({ method: "cancel" });
    state.transition("cancelling", "cancelled");
  }

  continueFromPreSwitchover(state: MigrationState): void {
    this.calls.push({ method: "continueFromPreSwitchover" });
    state.transition("pre-switchover", "device");
  }

  startPostcopy(_state: MigrationState): void {
    this.calls.push({ method: "startPostcopy" });
  }

  resume(uri: string, _state: MigrationState): void {
    this.calls.push({ method: "resume", uri });
  }
}
