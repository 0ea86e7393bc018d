// Saving and loading a set of device sections, all or nothing (QEMU's
// qemu_savevm_state_complete_precopy_non_iterable / qemu_loadvm_state_main for FULL sections,
// minus the stream framing, which the migration stream adds). Loading decodes and checks every
// section into new state objects first and adopts them only when all of them succeeded, so a
// bad section leaves every device as it was.

import { ByteReader, ByteWriter } from "./bytes.js";
import { loadState, saveState, VMStateError, type VMStateDescription } from "./vmstate.js";
import { vmdescDevice, type VmdescDevice, type VmdescSection } from "./vmstate-json.js";

/**
 * Any devices/device.ts Migratable<S>, its state type erased so that a list can hold
 * different devices (Migratable<S> is assignable to this for every S).
 */
export interface AnyMigratable {
  readonly vmsd: VMStateDescription<never>;
  saveState(): object;
  checkState?(s: never): string | null;
  adoptState(s: never): void;
}

/** One migratable thing of the machine under its section id (QEMU's SaveStateEntry). */
export interface SectionEntry {
  /** The section's idstr; QEMU uses the vmsd name for devices without a qdev path. */
  readonly idstr: string;
  readonly instanceId: number;
  readonly owner: AnyMigratable;
}

/** One encoded device section: what a QEMU_VM_SECTION_FULL record carries. */
export interface SavedSection {
  idstr: string;
  instanceId: number;
  versionId: number;
  bytes: Uint8Array;
}

/** Encode every entry; with `vmdesc`, also collect the stream's per-device descriptions. */
export function saveSections(entries: readonly SectionEntry[], vmdesc?: VmdescDevice[]): SavedSection[] {
  return entries.map((e) => {
    const w = new ByteWriter();
    const body = vmdesc ? ({} as VmdescSection) : undefined;
    saveState(e.owner.vmsd, e.owner.saveState() as never, w, body);
    if (vmdesc && body) vmdesc.push(vmdescDevice(e.idstr, e.instanceId, body));
    return { idstr: e.idstr, instanceId: e.instanceId, versionId: e.owner.vmsd.version_id, bytes: w.finish() };
  });
}

/**
 * Decode every section into a new state, check each against its device, then adopt them in
 * `entries` order. Throws (naming the section and field) before adopting anything when a
 * section is unknown, duplicated, missing, malformed or refused.
 */
export function loadSections(entries: readonly SectionEntry[], sections: readonly SavedSection[]): void {
  const key = (idstr: string, id: number) => `${idstr}\u0000${id}`;
  const byKey = new Map<string, SectionEntry>();
  for (const e of entries) byKey.set(key(e.idstr, e.instanceId), e);
  const decoded = new Map<SectionEntry, object>();
  for (const s of sections) {
    const e = byKey.get(key(s.idstr, s.instanceId));
    // QEMU's qemu_loadvm_section_start_full: "Unknown savevm section or instance".
    if (!e) throw new Error(`Unknown savevm section or instance '${s.idstr}' ${s.instanceId}`);
    if (decoded.has(e)) throw new Error(`section '${s.idstr}' ${s.instanceId} appears twice`);
    const state = loadState(e.owner.vmsd, s.versionId, new ByteReader(s.bytes), e.owner.saveState() as never, { exact: true }) as object;
    const why = e.owner.checkState?.(state as never) ?? null;
    if (why !== null) throw new VMStateError(e.owner.vmsd.name, "", why);
    decoded.set(e, state);
  }
  for (const e of entries) {
    if (!decoded.has(e)) throw new Error(`section '${e.idstr}' ${e.instanceId} is missing`);
  }
  for (const e of entries) e.owner.adoptState(decoded.get(e) as never);
}
