// Loading a whole migration stream defensively (QEMU 7.2 migration/savevm.c:
// qemu_loadvm_state, qemu_loadvm_state_header, qemu_loadvm_state_main,
// qemu_loadvm_section_start_full, qemu_loadvm_section_part_end, check_section_footer,
// loadvm_process_command). RAM records are written into the destination's RAM as they arrive
// (the destination is not running yet); device sections are decoded and checked as they
// arrive but only *collected*, and handed to the target in one all-or-nothing call after EOF,
// so a stream that breaks anywhere leaves every device as it was. Errors carry QEMU's words.

import { ByteReader, TruncatedInput } from "./bytes.js";
import { StreamEndedError, type QemuFileReader } from "./qemu-file.js";
import { MigrationLoadError, RamLoader } from "./ram-load.js";
import { RAM_SECTION_IDSTR, RAM_SECTION_VERSION } from "./ram-stream.js";
import type { SavedSection, SectionEntry } from "./sections.js";
import {
  QEMU_VM_COMMAND,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_FILE_VERSION_COMPAT,
  QEMU_VM_SECTION_END,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SECTION_PART,
  QEMU_VM_SECTION_START,
  QEMU_VM_SUBSECTION,
  QEMU_VM_VMDESCRIPTION,
} from "./stream.js";
import { loadState } from "./vmstate.js";

export { MigrationLoadError };

/** enum qemu_vm_cmd and each command's payload length (-1 = variable), as savevm.c's mig_cmd_args. */
export const MIG_CMD = [
  { name: "INVALID", len: -1 },
  { name: "OPEN_RETURN_PATH", len: 0 },
  { name: "PING", len: 4 },
  { name: "POSTCOPY_ADVISE", len: -1 },
  { name: "POSTCOPY_LISTEN", len: 0 },
  { name: "POSTCOPY_RUN", len: 0 },
  { name: "POSTCOPY_RAM_DISCARD", len: -1 },
  { name: "PACKAGED", len: 4 },
  { name: "ENABLE_COLO", len: 0 },
  { name: "POSTCOPY_RESUME", len: 0 },
  { name: "RECV_BITMAP", len: -1 },
] as const;

/** Where a stream is loaded to. */
export interface LoadTarget {
  /** The local machine type; the stream's must be the same. */
  machineName: string;
  /** The destination's RAM. */
  ram: RamLoader;
  /** Every section this machine can load (Machine.migrationEntries()); others are refused. */
  knownSections(): readonly SectionEntry[];
  /** Adopt every device section at once, after EOF (Machine.load: all or nothing). */
  loadDevices(sections: SavedSection[]): void | Promise<void>;
  /** A QEMU_VM_COMMAND record; without this hook every command is refused (postcopy is part 2). */
  onCommand?(cmd: number, data: Uint8Array): void | Promise<void>;
}

export interface LoadResult {
  machineName: string;
  sections: SavedSection[];
  /** Pages received as ZERO / PAGE records. */
  zeroPages: number;
  normalPages: number;
  bytesRead: number;
  /** The configuration section's uuid subsection (validate-uuid), if the source sent one. */
  uuid: Uint8Array | null;
  /** Non-fatal oddities QEMU would only print (e.g. no vmdesc after EOF). */
  warnings: string[];
}

/** Largest machine name accepted (QEMU's names are short; this only bounds a corrupt length). */
const MAX_MACHINE_NAME = 256;
/** Largest device section body accepted before refusing it as corrupt. */
const MAX_SECTION_BYTES = 64 << 20;

/** A ByteReader that records whether a parse wanted bytes past the end of its window. */
class WindowReader extends ByteReader {
  ranOut = false;

  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof TruncatedInput) this.ranOut = true;
      throw e;
    }
  }

  override peek(ahead = 0): number {
    const v = super.peek(ahead);
    if (v < 0) this.ranOut = true;
    return v;
  }

  override u8(): number {
    return this.guard(() => super.u8());
  }

  override be16(): number {
    return this.guard(() => super.be16());
  }

  override be32(): number {
    return this.guard(() => super.be32());
  }

  override be64(): bigint {
    return this.guard(() => super.be64());
  }

  override bytes(n: number): Uint8Array {
    return this.guard(() => super.bytes(n));
  }
}

/**
 * Read one device section body: its extent is whatever its VMState description consumes, so
 * decode it (checking every field) over a growing window of the buffered input.
 */
async function readDeviceSection(r: QemuFileReader, e: SectionEntry, versionId: number): Promise<Uint8Array> {
  let want = 4096;
  for (;;) {
    await r.fill(want);
    const window = r.peekContiguous().subarray(0, Math.min(want, r.available));
    const wr = new WindowReader(window);
    let failure: unknown = null;
    try {
      loadState(e.owner.vmsd, versionId, wr, e.owner.saveState() as never);
    } catch (err) {
      failure = err;
    }
    const more = wr.ranOut && (r.available > window.length || !r.ended);
    if (more) {
      if (want >= MAX_SECTION_BYTES) throw new MigrationLoadError(`section '${e.idstr}' is larger than ${MAX_SECTION_BYTES} bytes`);
      want *= 2;
      continue;
    }
    if (failure !== null) {
      if (wr.ranOut) throw new StreamEndedError(r.bytesRead + window.length, 1);
      const why = failure instanceof Error ? failure.message : String(failure);
      // qemu_loadvm_section_start_full's words, then the interpreter's reason.
      throw new MigrationLoadError(`error while loading state for instance 0x${e.instanceId.toString(16)} of device '${e.idstr}': ${why}`);
    }
    const body = window.slice(0, wr.offset);
    r.consume(wr.offset);
    return body;
  }
}

/**
 * Load a complete stream into `target`. Resolves when everything, devices included, has been
 * adopted; rejects with a MigrationLoadError (QEMU's words, and where the input ended for a
 * truncated stream) having adopted no device state.
 */
export async function loadMigrationStream(r: QemuFileReader, target: LoadTarget): Promise<LoadResult> {
  let where = "the file header";
  const sections: SavedSection[] = [];
  const result: LoadResult = { machineName: "", sections, zeroPages: 0, normalPages: 0, bytesRead: 0, uuid: null, warnings: [] };
  const ram = target.ram;
  const zero0 = ram.zeroPages;
  const normal0 = ram.normalPages;
  try {
    const magic = await r.get32();
    if (magic !== QEMU_VM_FILE_MAGIC) throw new MigrationLoadError("Not a migration stream");
    const version = await r.get32();
    if (version === QEMU_VM_FILE_VERSION_COMPAT) throw new MigrationLoadError("SaveVM v2 format is obsolete and don't work anymore");
    if (version !== QEMU_VM_FILE_VERSION) throw new MigrationLoadError("Unsupported migration stream version");

    where = "the configuration section";
    if ((await r.get8()) !== QEMU_VM_CONFIGURATION) throw new MigrationLoadError("Configuration section missing");
    result.machineName = await readConfiguration(r, target, result);

    const known = target.knownSections();
    const seen = new Set<string>();
    let ramSectionId: number | null = null;
    for (;;) {
      where = "a section header";
      const type = await r.get8();
      if (type === QEMU_VM_EOF) break;
      if (type === QEMU_VM_SECTION_START || type === QEMU_VM_SECTION_FULL) {
        const sectionId = await r.get32();
        const idstr = await r.getCountedString();
        const instanceId = await r.get32();
        const versionId = await r.get32();
        if (idstr === RAM_SECTION_IDSTR && instanceId === 0) {
          if (versionId > RAM_SECTION_VERSION) throw new MigrationLoadError(`savevm: unsupported version ${versionId} for '${idstr}' v${RAM_SECTION_VERSION}`);
          // ram_load refuses any other version with -EINVAL and no words of its own.
          if (versionId !== RAM_SECTION_VERSION) {
            throw new MigrationLoadError(`error while loading state for instance 0x0 of device 'ram': version ${versionId} is not ${RAM_SECTION_VERSION}`);
          }
          ramSectionId = sectionId;
          where = "the RAM section";
          await ram.loadSection(r);
          where = "a section footer";
          await checkFooter(r, idstr, sectionId);
          continue;
        }
        const e = known.find((k) => k.idstr === idstr && k.instanceId === instanceId);
        if (e === undefined) {
          throw new MigrationLoadError(
            `Unknown savevm section or instance '${idstr}' ${instanceId}. Make sure that your current VM setup matches your saved VM setup, including any hotplugged devices`,
          );
        }
        if (versionId > e.owner.vmsd.version_id) throw new MigrationLoadError(`savevm: unsupported version ${versionId} for '${idstr}' v${e.owner.vmsd.version_id}`);
        if (type === QEMU_VM_SECTION_START) throw new MigrationLoadError(`section '${idstr}' ${instanceId} arrived as START, but it is not iterative`);
        const key = `${idstr}\u0000${instanceId}`;
        if (seen.has(key)) throw new MigrationLoadError(`section '${idstr}' ${instanceId} appears twice`);
        seen.add(key);
        where = `section '${idstr}'`;
        const bytes = await readDeviceSection(r, e, versionId);
        sections.push({ idstr, instanceId, versionId, bytes });
        where = "a section footer";
        await checkFooter(r, idstr, sectionId);
        continue;
      }
      if (type === QEMU_VM_SECTION_PART || type === QEMU_VM_SECTION_END) {
        const sectionId = await r.get32();
        if (sectionId !== ramSectionId) throw new MigrationLoadError(`Unknown savevm section ${sectionId}`);
        where = "the RAM section";
        await ram.loadSection(r);
        where = "a section footer";
        await checkFooter(r, RAM_SECTION_IDSTR, sectionId);
        continue;
      }
      if (type === QEMU_VM_COMMAND) {
        where = "a command";
        const cmd = await r.get16();
        const len = await r.get16();
        const spec = MIG_CMD[cmd];
        if (spec === undefined || cmd === 0) throw new MigrationLoadError(`MIG_CMD 0x${cmd.toString(16)} unknown (len 0x${len.toString(16)})`);
        if (spec.len !== -1 && spec.len !== len) {
          throw new MigrationLoadError(`${spec.name} received with bad length - expecting ${spec.len}, got ${len}`);
        }
        const data = await r.getBytes(len);
        if (target.onCommand === undefined) {
          throw new MigrationLoadError(`${spec.name} command in a precopy stream: postcopy and the return path are not supported by this destination`);
        }
        await target.onCommand(cmd, data);
        continue;
      }
      throw new MigrationLoadError(`Unknown savevm section type ${type}`);
    }

    // After EOF: the vmdesc, read and dropped as QEMU does; a missing one is only a warning.
    where = "the vmdesc";
    const next = await r.peek8();
    if (next === QEMU_VM_VMDESCRIPTION) {
      await r.get8();
      const len = await r.get32();
      await r.skip(len);
    } else if (next >= 0) {
      result.warnings.push(`Expected vmdescription section, but got ${next}`);
    }
  } catch (e) {
    if (e instanceof StreamEndedError) throw new MigrationLoadError(`${e.message}, inside ${where}`);
    if (e instanceof MigrationLoadError) throw e;
    throw new MigrationLoadError(e instanceof Error ? e.message : String(e));
  }

  try {
    await target.loadDevices(sections);
  } catch (e) {
    throw new MigrationLoadError(`load of migration failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  result.zeroPages = ram.zeroPages - zero0;
  result.normalPages = ram.normalPages - normal0;
  result.bytesRead = r.bytesRead;
  return result;
}

async function checkFooter(r: QemuFileReader, idstr: string, sectionId: number): Promise<void> {
  const mark = await r.get8();
  if (mark !== QEMU_VM_SECTION_FOOTER) throw new MigrationLoadError(`Missing section footer for ${idstr}`);
  const id = await r.get32();
  if (id !== sectionId) {
    throw new MigrationLoadError(`Mismatched section id in footer for ${idstr} - read 0x${id.toString(16)} expected 0x${sectionId.toString(16)}`);
  }
}

/** vmstate_configuration: be32 length + name, then optional subsections. Returns the name. */
async function readConfiguration(r: QemuFileReader, target: LoadTarget, result: LoadResult): Promise<string> {
  const len = await r.get32();
  if (len > MAX_MACHINE_NAME) throw new MigrationLoadError(`configuration: machine name of ${len} bytes is too long`);
  const name = Buffer.from(await r.getBytes(len)).toString("utf8");
  while ((await r.peek8()) === QEMU_VM_SUBSECTION) {
    await r.get8();
    const sub = await r.getCountedString();
    const version = await r.get32();
    if (sub === "configuration/target-page-bits") {
      const bits = await r.get32();
      if (bits !== 12) throw new MigrationLoadError(`Received TARGET_PAGE_BITS is ${bits} but local is 12`);
    } else if (sub === "configuration/uuid") {
      result.uuid = await r.getBytes(16);
    } else if (sub === "configuration/capabilities") {
      const count = await r.get32();
      for (let i = 0; i < count; i++) {
        const cap = await r.getCountedString();
        // x-ignore-shared is the only capability QEMU validates this way; minivm has none of them.
        throw new MigrationLoadError(`Received capability '${cap}' that this destination does not support`);
      }
    } else {
      throw new MigrationLoadError(`configuration: unknown subsection '${sub}' (version ${version})`);
    }
  }
  if (name !== target.machineName) throw new MigrationLoadError(`Machine type received is '${name}' and local is '${target.machineName}'`);
  return name;
}
