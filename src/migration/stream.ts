// QEMU's migration stream framing (migration/savevm.c, QEMU 7.2): the file header, the
// configuration section, section records with their footers, EOF and the vmdesc JSON that
// scripts/analyze-migration.py reads. The live engine drives MigrationStreamWriter pass by
// pass; saveVmToStream writes a whole stream of a stopped machine in one go.
//
//   be32 "QEVM", be32 3
//   0x07 CONFIGURATION: be32 length + machine name (vmstate_configuration; its subsections,
//        target-page-bits, capabilities and uuid, are sent only when needed, never here)
//   0x01 START  be32 section id, u8 len + idstr, be32 instance id, be32 version id, data
//   0x02 PART / 0x03 END  be32 section id, data
//   0x04 FULL   as START, for a device's whole VMState
//   0x7e FOOTER be32 section id, after each of the four above
//   0x00 EOF, then 0x06 VMDESCRIPTION be32 length + JSON

import type { SavedSection } from "./sections.js";
import type { QemuFileWriter } from "./qemu-file.js";
import { RAM_SECTION_IDSTR, RAM_SECTION_VERSION, RamSaver, RAM_PAGE_SIZE } from "./ram-stream.js";
import type { VmdescDevice } from "./vmstate-json.js";

export const QEMU_VM_FILE_MAGIC = 0x5145564d;
export const QEMU_VM_FILE_VERSION_COMPAT = 0x00000002;
export const QEMU_VM_FILE_VERSION = 0x00000003;

export const QEMU_VM_EOF = 0x00;
export const QEMU_VM_SECTION_START = 0x01;
export const QEMU_VM_SECTION_PART = 0x02;
export const QEMU_VM_SECTION_END = 0x03;
export const QEMU_VM_SECTION_FULL = 0x04;
export const QEMU_VM_SUBSECTION = 0x05;
export const QEMU_VM_VMDESCRIPTION = 0x06;
export const QEMU_VM_CONFIGURATION = 0x07;
export const QEMU_VM_COMMAND = 0x08;
export const QEMU_VM_SECTION_FOOTER = 0x7e;

/** QEMU's machine name for the riscv32 virt board (hw/riscv/virt.c: mc->name via TYPE_VIRT_MACHINE). */
export const VIRT_MACHINE_NAME = "virt";

/** Section ids: RAM first, then each device in the order it is sent. */
export const RAM_SECTION_ID = 0;

/** Bytes of RAM data a PART may carry before the engine's budget; used by saveVmToStream. */
const ONE_PASS_CHUNK = 4 << 20;

/**
 * QEMU's JSON writer style for the vmdesc (qobject/json-writer.c without pretty printing):
 * ", " between members and ": " after keys.
 */
export function qemuJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(qemuJson).join(", ")}]`;
  if (typeof v === "object" && v !== null) {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) if (x !== undefined) parts.push(`${JSON.stringify(k)}: ${qemuJson(x)}`);
    return `{${parts.join(", ")}}`;
  }
  return JSON.stringify(v);
}

/**
 * The vmdesc JSON, padded with trailing spaces when needed: analyze-migration.py finds the
 * JSON by the last NUL byte in the file's tail and the first '{' after it, so a length field
 * with a byte 0x7b ('{') in it would be taken for the JSON's start. QEMU 7.2 itself does not
 * pad (its streams hit this when the length ends in 0x7b); trailing whitespace is valid JSON
 * and keeps the script right.
 */
export function vmdescJson(devices: readonly VmdescDevice[], pageSize = RAM_PAGE_SIZE): Uint8Array {
  let text = qemuJson({ page_size: pageSize, devices });
  const bad = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].includes(0x7b);
  while (bad(Buffer.byteLength(text, "utf8"))) text += " ";
  return Buffer.from(text, "utf8");
}

/** Writes one migration stream; every method appends whole records to the QemuFileWriter. */
export class MigrationStreamWriter {
  private ramStarted = false;
  private vmdesc: VmdescDevice[] = [];

  constructor(
    readonly f: QemuFileWriter,
    readonly machineName: string = VIRT_MACHINE_NAME,
  ) {}

  /** Magic, version and the configuration section (qemu_savevm_state_header). */
  writeHeader(): void {
    const f = this.f;
    f.put32(QEMU_VM_FILE_MAGIC);
    f.put32(QEMU_VM_FILE_VERSION);
    f.put8(QEMU_VM_CONFIGURATION);
    const name = Buffer.from(this.machineName, "utf8");
    f.put32(name.length);
    f.putBytes(name);
  }

  private sectionHeader(type: number, sectionId: number, idstr?: string, instanceId?: number, versionId?: number): void {
    const f = this.f;
    f.put8(type);
    f.put32(sectionId);
    if (idstr !== undefined) {
      f.putCountedString(idstr);
      f.put32(instanceId ?? 0);
      f.put32(versionId ?? 0);
    }
  }

  private footer(sectionId: number): void {
    this.f.put8(QEMU_VM_SECTION_FOOTER);
    this.f.put32(sectionId);
  }

  /**
   * The RAM section's START (ram_save_setup): the first dirty-bitmap sync (every page), the
   * MEM_SIZE block list, EOS. Returns the bytes written.
   */
  ramStart(ram: RamSaver): number {
    const before = this.f.bytesWritten;
    if (ram.syncCount === 0) ram.syncDirtyBitmap();
    this.sectionHeader(QEMU_VM_SECTION_START, RAM_SECTION_ID, RAM_SECTION_IDSTR, 0, RAM_SECTION_VERSION);
    ram.startSection();
    ram.writeBlockList(this.f);
    ram.writeEos(this.f);
    this.footer(RAM_SECTION_ID);
    this.ramStarted = true;
    return this.f.bytesWritten - before;
  }

  /** One PART (ram_save_iterate): dirty pages up to `budgetBytes`, EOS. Returns the bytes written. */
  ramPart(ram: RamSaver, budgetBytes: number, maxPages = Infinity): number {
    if (!this.ramStarted) throw new Error("ramPart before ramStart");
    const before = this.f.bytesWritten;
    this.sectionHeader(QEMU_VM_SECTION_PART, RAM_SECTION_ID);
    ram.startSection();
    ram.sendDirty(this.f, budgetBytes, maxPages);
    ram.writeEos(this.f);
    this.footer(RAM_SECTION_ID);
    return this.f.bytesWritten - before;
  }

  /**
   * The END (ram_save_complete): a last sync unless the caller just did one, then every
   * remaining page with no rate limit, EOS. Flushes as it goes so the sink's buffer stays
   * bounded. Returns the bytes written.
   */
  async ramEnd(ram: RamSaver, opts: { sync?: boolean } = {}): Promise<number> {
    if (!this.ramStarted) throw new Error("ramEnd before ramStart");
    const before = this.f.bytesWritten;
    if (opts.sync !== false) ram.syncDirtyBitmap();
    this.sectionHeader(QEMU_VM_SECTION_END, RAM_SECTION_ID);
    ram.startSection();
    while (ram.remainingPages > 0) {
      ram.sendDirty(this.f, ONE_PASS_CHUNK);
      await this.f.flush();
    }
    ram.writeEos(this.f);
    this.footer(RAM_SECTION_ID);
    return this.f.bytesWritten - before;
  }

  /**
   * A FULL section per device (qemu_savevm_state_complete_precopy_non_iterable), section ids
   * following RAM's; `vmdesc` (from saveSections) is kept for finish().
   */
  devices(sections: readonly SavedSection[], vmdesc: readonly VmdescDevice[]): number {
    const before = this.f.bytesWritten;
    sections.forEach((s, i) => {
      const id = RAM_SECTION_ID + 1 + i;
      this.sectionHeader(QEMU_VM_SECTION_FULL, id, s.idstr, s.instanceId, s.versionId);
      this.f.putBytes(s.bytes);
      this.footer(id);
    });
    this.vmdesc = [...vmdesc];
    return this.f.bytesWritten - before;
  }

  /** A writer for a recovered channel: the RAM section exists already, no header follows. */
  resumeRam(): void {
    this.ramStarted = true;
  }

  /** A QEMU_VM_COMMAND record (qemu_savevm_command_send). */
  command(cmd: number, payload: Uint8Array = new Uint8Array(0)): void {
    this.f.put8(QEMU_VM_COMMAND);
    this.f.put16(cmd);
    this.f.put16(payload.length);
    this.f.putBytes(payload);
  }

  /** Postcopy: a PART holding just `pages` (the ones the destination asked for). */
  ramPages(ram: RamSaver, pages: readonly number[]): number {
    const before = this.f.bytesWritten;
    this.sectionHeader(QEMU_VM_SECTION_PART, RAM_SECTION_ID);
    ram.startSection();
    for (const p of pages) ram.sendPage(this.f, p);
    ram.writeEos(this.f);
    this.footer(RAM_SECTION_ID);
    return this.f.bytesWritten - before;
  }

  /** Postcopy's end (qemu_savevm_state_complete_postcopy): RAM's END with what is left, then EOF. */
  async postcopyEnd(ram: RamSaver): Promise<void> {
    await this.ramEnd(ram, { sync: false });
    this.f.put8(QEMU_VM_EOF);
  }

  /** Only the device sections of `devices()`, for a PACKAGED blob: no vmdesc is kept. */
  deviceSections(sections: readonly SavedSection[]): void {
    this.devices(sections, []);
  }

  /** QEMU_VM_EOF, then the vmdesc JSON. The caller flushes. */
  finish(): number {
    const before = this.f.bytesWritten;
    this.f.put8(QEMU_VM_EOF);
    const json = vmdescJson(this.vmdesc);
    this.f.put8(QEMU_VM_VMDESCRIPTION);
    this.f.put32(json.length);
    this.f.putBytes(json);
    return this.f.bytesWritten - before;
  }
}

export interface SaveVmInput {
  machineName?: string;
  /** Guest RAM. */
  ram: Uint8Array;
  /**
   * The shared dirty bitmap; the save takes (clears) its bits as a migration does. Absent:
   * a private bitmap, so saving a stopped machine leaves its dirty bits alone.
   */
  dirty?: Int32Array;
  /** Device sections and their vmdesc, as saveSections(entries, vmdesc) produced them. */
  sections: readonly SavedSection[];
  vmdesc: readonly VmdescDevice[];
  blockName?: string;
}

/** A complete stream of a stopped machine in one pass (QEMU's savevm to `exec:cat > FILE`). */
export async function saveVmToStream(f: QemuFileWriter, input: SaveVmInput): Promise<RamSaver> {
  const dirty = input.dirty ?? new Int32Array(Math.ceil(input.ram.length / RAM_PAGE_SIZE / 32));
  const ram = new RamSaver({ ram: input.ram, dirty, blockName: input.blockName });
  const w = new MigrationStreamWriter(f, input.machineName ?? VIRT_MACHINE_NAME);
  w.writeHeader();
  w.ramStart(ram);
  await w.ramEnd(ram, { sync: false });
  w.devices(input.sections, input.vmdesc);
  w.finish();
  await f.flush();
  return ram;
}
