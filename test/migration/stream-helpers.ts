// Helpers for the migration stream tests: a machine stopped mid-run, its stream as bytes,
// and a load target over a second machine.

import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { Machine, type SliceResult } from "../../src/core/machine.js";
import type { LoadTarget } from "../../src/migration/load.js";
import { QemuFileReader, QemuFileWriter } from "../../src/migration/qemu-file.js";
import { RamLoader } from "../../src/migration/ram-load.js";
import type { SavedSection } from "../../src/migration/sections.js";
import { saveVmToStream, VIRT_MACHINE_NAME } from "../../src/migration/stream.js";
import type { VmdescDevice } from "../../src/migration/vmstate-json.js";

export const ELF_DIR = new URL("../../firmware/tests/build/", import.meta.url).pathname;
export const SMALL_RAM = 4 << 20;

export function kernel(name: string): Uint8Array {
  return new Uint8Array(readFileSync(`${ELF_DIR}${name}.elf`));
}

export function runToEnd(m: Machine): SliceResult {
  for (;;) {
    const r = m.runSlice(100_000);
    if (r.kind === "shutdown" || r.kind === "reset") return r;
    if (r.kind === "idle") {
      if (r.wakeAtNs === null) return r;
      while (performance.now() * 1e6 < r.wakeAtNs) {
        // wait for the timer
      }
    }
  }
}

/** A Writable that keeps every chunk. */
export class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(chunk);
    cb();
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The whole stream of `m` as bytes. */
export async function streamOf(m: Machine): Promise<Buffer> {
  const sink = new Collector();
  const vmdesc: VmdescDevice[] = [];
  const sections = m.save(vmdesc);
  await saveVmToStream(new QemuFileWriter(sink), { ram: m.ram.bytes, sections, vmdesc });
  return sink.bytes();
}

/** A reader over `bytes` delivered in chunks of `chunk` bytes (small chunks split every record). */
export function readerOf(bytes: Uint8Array, chunk = 65536): QemuFileReader {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(Buffer.from(bytes.subarray(i, i + chunk)));
  return new QemuFileReader(Readable.from(parts, { objectMode: false }));
}

/** A load target over machine `m`; `adopted` records what reached loadDevices. */
export function targetOf(m: Machine): LoadTarget & { adopted: SavedSection[][] } {
  const adopted: SavedSection[][] = [];
  return {
    machineName: VIRT_MACHINE_NAME,
    ram: new RamLoader({ ram: m.ram.bytes }),
    knownSections: () => m.migrationEntries(),
    loadDevices: (s) => {
      m.load(s);
      adopted.push(s);
    },
    adopted,
  };
}
