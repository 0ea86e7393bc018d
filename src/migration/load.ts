// Loading a whole migration stream defensively (QEMU 7.2 migration/savevm.c:
// qemu_loadvm_state, qemu_loadvm_state_header, qemu_loadvm_state_main,
// qemu_loadvm_section_start_full, qemu_loadvm_section_part_end, check_section_footer,
// loadvm_process_command). RAM records are written into the destination's RAM as they arrive
// (the destination is not running yet); device sections are decoded and checked as they
// arrive but only *collected*, and handed to the target in one all-or-nothing call after EOF,
// so a stream that breaks anywhere leaves every device as it was. Errors carry QEMU's words.

import { ByteReader, TruncatedInput } from "./bytes.js";
import { QemuFileReader, StreamEndedError } from "./qemu-file.js";
import { MigrationLoadError, RamLoader } from "./ram-load.js";
import { RAM_PAGE_SIZE, RAM_SECTION_IDSTR, RAM_SECTION_VERSION } from "./ram-stream.js";
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

/** QEMU's PostcopyState on the destination (migration/postcopy-ram.h). */
export const enum PostcopyIncoming {
  None = 0,
  Advise = 1,
  Discard = 2,
  Listening = 3,
  Running = 4,
  End = 5,
}

/**
 * What a destination that can do postcopy (and answer on a return path) plugs into the loader.
 * Without these hooks every QEMU_VM_COMMAND is refused.
 */
export interface PostcopyHooks {
  /** OPEN_RETURN_PATH: from now on the destination may answer (PONG, page requests, ...). */
  openReturnPath(): void;
  /** PING: answered with PONG on the return path, if open. */
  ping(value: number): void;
  /** POSTCOPY_ADVISE; true when the destination has postcopy-ram on (it then checks the sizes). */
  postcopyRam(): boolean;
  /** POSTCOPY_RAM_DISCARD for one block: byte ranges (start, length) to drop. */
  discard(blockName: string, ranges: Array<[number, number]>): void;
  /** POSTCOPY_LISTEN: missing pages fault from now on. */
  listen(): void;
  /**
   * POSTCOPY_RUN with every device section of the package: adopt them and start the guest.
   * The loader does not wait: the rest of RAM must keep flowing while the devices load.
   */
  run(sections: SavedSection[]): void;
  /** RECV_BITMAP (recovery): send this block's received bitmap on the return path. */
  recvBitmap(blockName: string): void;
  /** POSTCOPY_RESUME (recovery): back to postcopy-active, RESUME_ACK, re-send requests. */
  resume(): void;
  /**
   * The channel failed while in postcopy (listening or running): pause, and resolve with a
   * reader on the recovered channel (after migrate-recover and the source's resume). Rejects
   * when the migration cannot go on.
   */
  channelBroken(error: unknown): Promise<QemuFileReader>;
}

/** Where a stream is loaded to. */
export interface LoadTarget {
  /** The local machine type; the stream's must be the same. */
  machineName: string;
  /** The destination's RAM. */
  ram: RamLoader;
  /** Every section this machine can load (Machine.migrationEntries()); others are refused. */
  knownSections?(): readonly SectionEntry[];
  /** Or, for a loader away from the devices: their list and a decoder reached by message. */
  catalog?: SectionCatalog;
  /** Adopt every device section at once, after EOF (Machine.load: all or nothing). */
  loadDevices(sections: SavedSection[]): void | Promise<void>;
  /** The return path and postcopy; without them a QEMU_VM_COMMAND ends the load. */
  postcopy?: PostcopyHooks;
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
  /** True when the guest was started by POSTCOPY_RUN (devices adopted then, not at EOF). */
  postcopy: boolean;
}

/** Largest machine name accepted (QEMU's names are short; this only bounds a corrupt length). */
const MAX_MACHINE_NAME = 256;
/** Largest device section body accepted before refusing it as corrupt. */
const MAX_SECTION_BYTES = 64 << 20;
/** Largest PACKAGED blob accepted (QEMU allows UINT32_MAX; minivm's devices need kilobytes). */
const MAX_PACKAGED_BYTES = 256 << 20;

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

/** What the loader must know of a device section this machine can load. */
export interface SectionInfo {
  idstr: string;
  instanceId: number;
  /** The description's version_id (the newest version it loads). */
  versionId: number;
}

/** The outcome of decoding a device section over a window of the input. */
export type SectionMeasure = { kind: "ok"; length: number } | { kind: "ranout" } | { kind: "error"; message: string };

/**
 * Decode a device section body over `window` with the owner's VMState description, checking
 * every field: its length, or that the window ran out, or QEMU's words for what is wrong.
 * Runs where the devices live (the core thread); a loader elsewhere asks for it by message.
 */
export function measureSection(e: SectionEntry, versionId: number, window: Uint8Array): SectionMeasure {
  const wr = new WindowReader(window);
  let failure: unknown = null;
  try {
    loadState(e.owner.vmsd, versionId, wr, e.owner.saveState() as never);
  } catch (err) {
    failure = err;
  }
  if (wr.ranOut) return { kind: "ranout" };
  if (failure !== null) {
    const why = failure instanceof Error ? failure.message : String(failure);
    // qemu_loadvm_section_start_full's words, then the interpreter's reason.
    return { kind: "error", message: `error while loading state for instance 0x${e.instanceId.toString(16)} of device '${e.idstr}': ${why}` };
  }
  return { kind: "ok", length: wr.offset };
}

/** The device sections a machine can load, and a way to decode them. */
export interface SectionCatalog {
  sections: readonly SectionInfo[];
  measure(idstr: string, instanceId: number, versionId: number, window: Uint8Array): SectionMeasure | Promise<SectionMeasure>;
}

/** A catalog over this thread's own machine (Machine.migrationEntries()). */
export function localCatalog(entries: readonly SectionEntry[]): SectionCatalog {
  return {
    sections: entries.map((e) => ({ idstr: e.idstr, instanceId: e.instanceId, versionId: e.owner.vmsd.version_id })),
    measure: (idstr, instanceId, versionId, window) => {
      const e = entries.find((k) => k.idstr === idstr && k.instanceId === instanceId);
      if (e === undefined) return { kind: "error", message: `Unknown savevm section or instance '${idstr}' ${instanceId}` };
      return measureSection(e, versionId, window);
    },
  };
}

/**
 * Read one device section body: its extent is whatever its VMState description consumes, so
 * decode it (checking every field) over a growing window of the buffered input.
 */
async function readDeviceSection(r: QemuFileReader, catalog: SectionCatalog, e: SectionInfo, versionId: number): Promise<Uint8Array> {
  let want = 4096;
  for (;;) {
    await r.fill(want);
    const window = r.peekContiguous().subarray(0, Math.min(want, r.available));
    const m = await catalog.measure(e.idstr, e.instanceId, versionId, window);
    if (m.kind === "ranout") {
      if (r.available > window.length || !r.ended) {
        if (want >= MAX_SECTION_BYTES) throw new MigrationLoadError(`section '${e.idstr}' is larger than ${MAX_SECTION_BYTES} bytes`);
        want *= 2;
        continue;
      }
      throw new StreamEndedError(r.bytesRead + window.length, 1);
    }
    if (m.kind === "error") throw new MigrationLoadError(m.message);
    const body = window.slice(0, m.length);
    r.consume(m.length);
    return body;
  }
}

/** Loop exit reasons of one qemu_loadvm_state_main pass. */
type LoopEnd = "eof" | "exhausted";

/** One incoming stream's state across its main loop, packages and recovered channels. */
class StreamLoad {
  where = "the file header";
  readonly sections: SavedSection[] = [];
  private readonly seen = new Set<string>();
  private ramSectionId: number | null = null;
  private catalog: SectionCatalog = { sections: [], measure: () => ({ kind: "error", message: "no sections" }) };
  postcopyState = PostcopyIncoming.None;
  returnPath = false;

  constructor(
    readonly target: LoadTarget,
    readonly result: LoadResult,
  ) {}

  async header(r: QemuFileReader): Promise<void> {
    const magic = await r.get32();
    if (magic !== QEMU_VM_FILE_MAGIC) throw new MigrationLoadError("Not a migration stream");
    const version = await r.get32();
    if (version === QEMU_VM_FILE_VERSION_COMPAT) throw new MigrationLoadError("SaveVM v2 format is obsolete and don't work anymore");
    if (version !== QEMU_VM_FILE_VERSION) throw new MigrationLoadError("Unsupported migration stream version");
    this.where = "the configuration section";
    if ((await r.get8()) !== QEMU_VM_CONFIGURATION) throw new MigrationLoadError("Configuration section missing");
    this.result.machineName = await readConfiguration(r, this.target, this.result);
    this.catalog = this.target.catalog ?? localCatalog(this.target.knownSections?.() ?? []);
  }

  /** True while a broken channel is a pause rather than a failure (QEMU's postcopy_pause_incoming). */
  private get recoverable(): boolean {
    return this.target.postcopy !== undefined && (this.postcopyState === PostcopyIncoming.Listening || this.postcopyState === PostcopyIncoming.Running);
  }

  /**
   * The main stream: sections and commands until EOF. In postcopy a channel that breaks is
   * handed to channelBroken(), and the loop goes on, at a record boundary, on the channel it
   * returns: a page record cut in half never reached RAM, so the source sends it again.
   */
  async main(r: QemuFileReader): Promise<void> {
    for (;;) {
      try {
        await this.loop(r, false);
        return;
      } catch (e) {
        if (e instanceof MigrationLoadError || !this.recoverable) throw e;
        r = await this.target.postcopy!.channelBroken(e);
      }
    }
  }

  /** qemu_loadvm_state_main over `r` (the channel, or a PACKAGED blob that ends without EOF). */
  async loop(r: QemuFileReader, inPackage: boolean): Promise<LoopEnd> {
    const ram = this.target.ram;
    for (;;) {
      this.where = "a section header";
      if (inPackage && (await r.peek8()) < 0) return "exhausted";
      const type = await r.get8();
      if (type === QEMU_VM_EOF) return "eof";
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
          this.ramSectionId = sectionId;
          this.where = "the RAM section";
          await ram.loadSection(r);
          this.where = "a section footer";
          await checkFooter(r, idstr, sectionId);
          continue;
        }
        const e = this.catalog.sections.find((k) => k.idstr === idstr && k.instanceId === instanceId);
        if (e === undefined) {
          throw new MigrationLoadError(
            `Unknown savevm section or instance '${idstr}' ${instanceId}. Make sure that your current VM setup matches your saved VM setup, including any hotplugged devices`,
          );
        }
        if (versionId > e.versionId) throw new MigrationLoadError(`savevm: unsupported version ${versionId} for '${idstr}' v${e.versionId}`);
        if (type === QEMU_VM_SECTION_START) throw new MigrationLoadError(`section '${idstr}' ${instanceId} arrived as START, but it is not iterative`);
        const key = `${idstr}\u0000${instanceId}`;
        if (this.seen.has(key)) throw new MigrationLoadError(`section '${idstr}' ${instanceId} appears twice`);
        this.seen.add(key);
        this.where = `section '${idstr}'`;
        const bytes = await readDeviceSection(r, this.catalog, e, versionId);
        this.sections.push({ idstr, instanceId, versionId, bytes });
        this.where = "a section footer";
        await checkFooter(r, idstr, sectionId);
        continue;
      }
      if (type === QEMU_VM_SECTION_PART || type === QEMU_VM_SECTION_END) {
        const sectionId = await r.get32();
        if (sectionId !== this.ramSectionId) throw new MigrationLoadError(`Unknown savevm section ${sectionId}`);
        this.where = "the RAM section";
        await ram.loadSection(r);
        this.where = "a section footer";
        await checkFooter(r, RAM_SECTION_IDSTR, sectionId);
        continue;
      }
      if (type === QEMU_VM_COMMAND) {
        this.where = "a command";
        const cmd = await r.get16();
        const len = await r.get16();
        const spec = MIG_CMD[cmd];
        if (spec === undefined || cmd === 0) throw new MigrationLoadError(`MIG_CMD 0x${cmd.toString(16)} unknown (len 0x${len.toString(16)})`);
        if (spec.len !== -1 && spec.len !== len) {
          throw new MigrationLoadError(`${spec.name} received with bad length - expecting ${spec.len}, got ${len}`);
        }
        const data = await r.getBytes(len);
        await this.command(cmd, data, r);
        continue;
      }
      throw new MigrationLoadError(`Unknown savevm section type ${type}`);
    }
  }

  /** loadvm_process_command. */
  private async command(cmd: number, data: Uint8Array, r: QemuFileReader): Promise<void> {
    const hooks = this.target.postcopy;
    const name = MIG_CMD[cmd]?.name ?? String(cmd);
    if (hooks === undefined) {
      throw new MigrationLoadError(`${name} command in a precopy stream: postcopy and the return path are not supported by this destination`);
    }
    const be32 = (o: number) => ((data[o] << 24) | (data[o + 1] << 16) | (data[o + 2] << 8) | data[o + 3]) >>> 0;
    const be64 = (o: number) => be32(o) * 2 ** 32 + be32(o + 4);
    switch (cmd) {
      case MIG_CMD_OPEN_RETURN_PATH:
        // QEMU: "Not really a problem, so don't give up".
        if (!this.returnPath) {
          this.returnPath = true;
          hooks.openReturnPath();
        }
        return;
      case MIG_CMD_PING:
        if (this.returnPath) hooks.ping(be32(0));
        return;
      case MIG_CMD_POSTCOPY_ADVISE: {
        if (this.postcopyState !== PostcopyIncoming.None) {
          throw new MigrationLoadError(`CMD_POSTCOPY_ADVISE in wrong postcopy state (${this.postcopyState})`);
        }
        const ramOn = hooks.postcopyRam();
        if (data.length === 0) {
          if (ramOn) throw new MigrationLoadError("RAM postcopy is enabled but have 0 byte advise");
          return;
        }
        if (data.length !== 16) throw new MigrationLoadError(`CMD_POSTCOPY_ADVISE invalid length (${data.length})`);
        if (!ramOn) throw new MigrationLoadError("RAM postcopy is disabled but have 16 byte advise");
        const remotePs = be64(0);
        if (remotePs !== RAM_PAGE_SIZE) {
          throw new MigrationLoadError(`Postcopy needs matching RAM page sizes (s=${remotePs.toString(16)} d=${RAM_PAGE_SIZE.toString(16)})`);
        }
        const remoteTps = be64(8);
        if (remoteTps !== RAM_PAGE_SIZE) throw new MigrationLoadError(`Postcopy needs matching target page sizes (s=${remoteTps} d=${RAM_PAGE_SIZE})`);
        this.postcopyState = PostcopyIncoming.Advise;
        return;
      }
      case MIG_CMD_POSTCOPY_RAM_DISCARD: {
        if (this.postcopyState !== PostcopyIncoming.Advise && this.postcopyState !== PostcopyIncoming.Discard) {
          throw new MigrationLoadError(`CMD_POSTCOPY_RAM_DISCARD in wrong postcopy state (${this.postcopyState})`);
        }
        this.postcopyState = PostcopyIncoming.Discard;
        if (data.length < 1 + 1 + 1 + 1 + 2 * 8) throw new MigrationLoadError(`CMD_POSTCOPY_RAM_DISCARD invalid length (${data.length})`);
        if (data[0] !== 0) throw new MigrationLoadError(`CMD_POSTCOPY_RAM_DISCARD invalid version (${data[0]})`);
        const n = data[1];
        if (2 + n + 1 > data.length) throw new MigrationLoadError("CMD_POSTCOPY_RAM_DISCARD Failed to read RAMBlock ID");
        const block = Buffer.from(data.subarray(2, 2 + n)).toString("latin1");
        if (data[2 + n] !== 0) throw new MigrationLoadError(`CMD_POSTCOPY_RAM_DISCARD missing nil (${data[2 + n]})`);
        const rest = data.length - (3 + n);
        if (rest % 16 !== 0) throw new MigrationLoadError(`CMD_POSTCOPY_RAM_DISCARD invalid length (${rest})`);
        const ranges: Array<[number, number]> = [];
        for (let o = 3 + n; o < data.length; o += 16) ranges.push([be64(o), be64(o + 8)]);
        hooks.discard(block, ranges);
        return;
      }
      case MIG_CMD_POSTCOPY_LISTEN:
        if (this.postcopyState !== PostcopyIncoming.Advise && this.postcopyState !== PostcopyIncoming.Discard) {
          throw new MigrationLoadError(`CMD_POSTCOPY_LISTEN in wrong postcopy state (${this.postcopyState})`);
        }
        this.postcopyState = PostcopyIncoming.Listening;
        hooks.listen();
        return;
      case MIG_CMD_POSTCOPY_RUN:
        if (this.postcopyState !== PostcopyIncoming.Listening) {
          throw new MigrationLoadError(`CMD_POSTCOPY_RUN in wrong postcopy state (${this.postcopyState})`);
        }
        this.postcopyState = PostcopyIncoming.Running;
        this.result.postcopy = true;
        hooks.run([...this.sections]);
        return;
      case MIG_CMD_PACKAGED: {
        const length = be32(0);
        if (length > MAX_PACKAGED_BYTES) throw new MigrationLoadError(`Unreasonably large packaged state: ${length}`);
        this.where = "a packaged blob";
        let blob: Uint8Array;
        try {
          blob = await r.getBytes(length);
        } catch (e) {
          if (e instanceof StreamEndedError) throw new MigrationLoadError(`CMD_PACKAGED: Buffer receive fail ret=${r.bytesRead} length=${length}`);
          throw e;
        }
        const end = await this.loop(new QemuFileReader((async function* () {
          yield blob;
        })()), true);
        // QEMU stops at the package's end or at RUN; an EOF inside one is not its format.
        if (end === "eof") throw new MigrationLoadError("CMD_PACKAGED: the package holds an EOF");
        return;
      }
      case MIG_CMD_POSTCOPY_RESUME:
        hooks.resume();
        return;
      case MIG_CMD_RECV_BITMAP: {
        const n = data[0] ?? 0;
        if (n === 0) throw new MigrationLoadError("loadvm_handle_recv_bitmap: failed to read block name");
        if (data.length !== n + 1) throw new MigrationLoadError(`loadvm_handle_recv_bitmap: invalid payload length (${data.length})`);
        const block = Buffer.from(data.subarray(1, 1 + n)).toString("latin1");
        if (block !== this.target.ram.blockName) throw new MigrationLoadError(`loadvm_handle_recv_bitmap: block '${block}' not found`);
        hooks.recvBitmap(block);
        return;
      }
      default:
        throw new MigrationLoadError(`MIG_CMD ${name} is not supported by minivm`);
    }
  }
}

/** enum qemu_vm_cmd's values (the indices of MIG_CMD). */
export const MIG_CMD_OPEN_RETURN_PATH = 1;
export const MIG_CMD_PING = 2;
export const MIG_CMD_POSTCOPY_ADVISE = 3;
export const MIG_CMD_POSTCOPY_LISTEN = 4;
export const MIG_CMD_POSTCOPY_RUN = 5;
export const MIG_CMD_POSTCOPY_RAM_DISCARD = 6;
export const MIG_CMD_PACKAGED = 7;
export const MIG_CMD_POSTCOPY_RESUME = 9;
export const MIG_CMD_RECV_BITMAP = 10;

/**
 * Load a complete stream into `target`. Resolves when everything, devices included, has been
 * adopted (in postcopy: once the stream's EOF arrived, the devices having been handed to
 * PostcopyHooks.run earlier); rejects with a MigrationLoadError (QEMU's words, and where the
 * input ended for a truncated stream) having adopted no device state unless postcopy ran.
 */
export async function loadMigrationStream(r: QemuFileReader, target: LoadTarget): Promise<LoadResult> {
  const result: LoadResult = { machineName: "", sections: [], zeroPages: 0, normalPages: 0, bytesRead: 0, uuid: null, warnings: [], postcopy: false };
  const load = new StreamLoad(target, result);
  result.sections = load.sections;
  const ram = target.ram;
  const zero0 = ram.zeroPages;
  const normal0 = ram.normalPages;
  try {
    await load.header(r);
    await load.main(r);
    // After EOF: the vmdesc, read and dropped as QEMU does; a missing one is only a warning
    // (a postcopy stream has none).
    load.where = "the vmdesc";
    if (!result.postcopy) {
      const next = await r.peek8();
      if (next === QEMU_VM_VMDESCRIPTION) {
        await r.get8();
        const len = await r.get32();
        await r.skip(len);
      } else if (next >= 0) {
        result.warnings.push(`Expected vmdescription section, but got ${next}`);
      }
    }
  } catch (e) {
    if (e instanceof StreamEndedError) throw new MigrationLoadError(`${e.message}, inside ${load.where}`);
    if (e instanceof MigrationLoadError) throw e;
    throw new MigrationLoadError(e instanceof Error ? e.message : String(e));
  }

  if (!result.postcopy) {
    try {
      await target.loadDevices(load.sections);
    } catch (e) {
      throw new MigrationLoadError(`load of migration failed: ${e instanceof Error ? e.message : String(e)}`);
    }
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
