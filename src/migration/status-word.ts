// The two migrations' status words in the shared control region (CONTROL.MIG_OUT_STATUS and
// CONTROL.MIG_IN_STATUS). The out-of-band commands that act on a migration (migrate-pause,
// migrate-recover, yank) check its state here, on the monitor thread, without the BQL: the
// core thread may be stuck on a postcopy page fault and cannot be asked.

import { MigrationStatus_VALUES, type MigrationStatus } from "../qapi/generated/types.js";

/** Their places among the control words (src/core/shared.ts CONTROL lists them). */
export const MIG_OUT_STATUS_WORD = 10;
export const MIG_IN_STATUS_WORD = 11;
/** Postcopy's waiting-word slot (src/memory/present-gate.ts), beside the status words. */
export const POSTCOPY_WAITING_WORD = 12;

export type MigrationSide = "outgoing" | "incoming";

const word = (side: MigrationSide) => (side === "outgoing" ? MIG_OUT_STATUS_WORD : MIG_IN_STATUS_WORD);

export function storeMigrationStatus(control: Int32Array, side: MigrationSide, status: MigrationStatus): void {
  Atomics.store(control, word(side), MigrationStatus_VALUES.indexOf(status));
}

export function loadMigrationStatus(control: Int32Array, side: MigrationSide): MigrationStatus {
  return MigrationStatus_VALUES[Atomics.load(control, word(side))] ?? "none";
}
