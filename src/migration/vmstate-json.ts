// The two JSON views of VMState descriptions that QEMU's tools read:
// - the vmdesc entry written beside each device section of a migration stream
//   (migration/vmstate.c vmsd_desc_field_start/_end, vmstate_save_state_v,
//   vmstate_subsection_save; read by scripts/analyze-migration.py), filled in by saveState();
// - the `-dump-vmstate` file (migration/savevm.c dump_vmstate_json_to_file; read by
//   scripts/vmstate-static-checker.py), built here from the descriptions alone.

import { elementSize, type VMStateDescription, type VMStateField } from "./vmstate.js";

/** One field entry of a vmdesc, with QEMU's keys in QEMU's order. */
export interface VmdescField {
  name: string;
  /** A compressible array (fixed-shape elements) is one entry with its length... */
  array_len?: number;
  /** ...any other array has one entry per element with its index. */
  index?: number;
  type?: string;
  /** A nested description (VMS_STRUCT). */
  struct?: VmdescSection;
  /** Bytes this element (or the first element of a compressed array) took in the stream. */
  size?: number;
}

export type VmdescFields = VmdescField[];

/** What vmstate_save_state_v writes for one description. */
export interface VmdescSection {
  vmsd_name: string;
  version: number;
  fields: VmdescFields;
  subsections?: VmdescSection[];
}

/** A device entry of the stream's vmdesc "devices" array (savevm.c adds name and instance_id). */
export interface VmdescDevice extends VmdescSection {
  name: string;
  instance_id: number;
}

/** The entry for a section, keys in QEMU's order: name, instance_id, then the description. */
export function vmdescDevice(idstr: string, instanceId: number, body: VmdescSection): VmdescDevice {
  const out: VmdescDevice = { name: idstr, instance_id: instanceId, vmsd_name: body.vmsd_name, version: body.version, fields: body.fields };
  if (body.subsections) out.subsections = body.subsections;
  return out;
}

// ---------------------------------------------------------------------------------------
// -dump-vmstate

export interface DumpField {
  field: string;
  version_id: number;
  field_exists: boolean;
  size: number;
  Description?: DumpDescription;
}

export interface DumpDescription {
  name: string;
  version_id: number;
  minimum_version_id: number;
  Fields: DumpField[];
  Subsections?: DumpDescription[];
}

export interface DumpDevice {
  Name: string;
  version_id: number;
  minimum_version_id: number;
  Description: DumpDescription;
}

export type VmstateDump = { vmschkmachine: { Name: string } } & { [device: string]: DumpDevice | { Name: string } };

/** dump_vmstate_vmsd: a description with its fields and subsections. */
export function dumpDescription(vmsd: VMStateDescription<never>): DumpDescription {
  const out: DumpDescription = {
    name: vmsd.name,
    version_id: vmsd.version_id,
    minimum_version_id: vmsd.minimum_version_id,
    Fields: vmsd.fields.map(dumpField),
  };
  if (vmsd.subsections) out.Subsections = vmsd.subsections.map((s) => dumpDescription(s));
  return out;
}

/**
 * dump_vmstate_vmsf. `size` is QEMU's field->size: one element's size (an array's element,
 * a fixed buffer's length, 0 for a variable buffer); for a struct, minivm's encoded size of
 * one element stands in for C's sizeof.
 */
function dumpField(f: VMStateField<never>): DumpField {
  const out: DumpField = { field: f.name, version_id: f.version_id ?? 0, field_exists: false, size: elementSize(f) };
  if (f.type === "struct") out.Description = dumpDescription(f.vmsd);
  return out;
}

/**
 * dump_vmstate_json_to_file: `{ vmschkmachine: { Name }, <type>: { Name, version_id,
 * minimum_version_id, Description } ... }`, one entry per device type (QEMU keys them by QOM
 * type name, which is also the entry's Name).
 */
export function dumpVmstate(machineName: string, devices: readonly { typeName: string; vmsd: VMStateDescription<never> }[]): VmstateDump {
  const out: Record<string, DumpDevice | { Name: string }> = { vmschkmachine: { Name: machineName } };
  for (const d of devices) {
    if (Object.prototype.hasOwnProperty.call(out, d.typeName)) continue;
    out[d.typeName] = {
      Name: d.typeName,
      version_id: d.vmsd.version_id,
      minimum_version_id: d.vmsd.minimum_version_id,
      Description: dumpDescription(d.vmsd),
    };
  }
  return out as VmstateDump;
}
