// A postcopy stream as QEMU 7.2 lays it out, written by the source's own pieces and read by the
// loader with postcopy hooks: the commands arrive in order with their payloads, the devices
// come with RUN (not at EOF), pages already present are never overwritten, and a damaged or
// truncated stream ends in a MigrationLoadError (or a recovered channel), never a crash or hang.

import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { loadMigrationStream, MIG_CMD_OPEN_RETURN_PATH, MIG_CMD_PING, MIG_CMD_POSTCOPY_ADVISE, MigrationLoadError, type PostcopyHooks } from "../../src/migration/load.js";
import { buildPackage, writeDiscards } from "../../src/migration/postcopy-source.js";
import { QemuFileWriter } from "../../src/migration/qemu-file.js";
import { RamLoader } from "../../src/migration/ram-load.js";
import { RamSaver } from "../../src/migration/ram-stream.js";
import type { SavedSection } from "../../src/migration/sections.js";
import { MigrationStreamWriter, VIRT_MACHINE_NAME } from "../../src/migration/stream.js";
import { Collector, kernel, readerOf, SMALL_RAM } from "./stream-helpers.js";

const k = kernel("alu");
const PAGES = SMALL_RAM / 4096;

const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

/** The source: precopy of half the pages, 8 pages dirtied again, then the postcopy switch. */
async function postcopyStream(): Promise<{ bytes: Buffer; src: Machine; redirtied: number[] }> {
  const src = new Machine({ serialOut: () => {}, kernel: k, ramSize: SMALL_RAM });
  src.runSlice(5_000);
  const sink = new Collector();
  const f = new QemuFileWriter(sink);
  const w = new MigrationStreamWriter(f, VIRT_MACHINE_NAME);
  const dirty = new Int32Array(src.ram.dirty.buffer, src.ram.dirty.byteOffset, src.ram.dirty.length);
  const ram = new RamSaver({ ram: src.ram.bytes, dirty });
  w.writeHeader();
  w.command(MIG_CMD_OPEN_RETURN_PATH);
  w.command(MIG_CMD_PING, be32(1));
  const advise = Buffer.alloc(16);
  advise.writeBigUInt64BE(4096n, 0);
  advise.writeBigUInt64BE(4096n, 8);
  w.command(MIG_CMD_POSTCOPY_ADVISE, advise);
  w.ramStart(ram);
  w.ramPart(ram, (PAGES / 2) * 4096);
  // The guest writes some pages that were already sent.
  const redirtied = [1, 2, 3, 40, 41, 100, 200, 300];
  for (const p of redirtied) {
    src.ram.bytes[p * 4096] ^= 0x5a;
    src.ram.markDirty(p * 4096, 1);
  }
  ram.syncDirtyBitmap();
  writeDiscards(w, ram);
  w.command(MIG_CMD_PING, be32(2));
  const pkg = await buildPackage(VIRT_MACHINE_NAME, src.save());
  w.command(7, be32(pkg.length));
  f.putBytes(pkg);
  w.command(MIG_CMD_PING, be32(4));
  // A requested page first, then the rest.
  w.ramPages(ram, [300]);
  await w.postcopyEnd(ram);
  await f.flush();
  return { bytes: sink.bytes(), src, redirtied };
}

const { bytes: good, src, redirtied } = await postcopyStream();

interface Calls {
  log: string[];
  run: SavedSection[] | null;
}

function hooks(calls: Calls, present: Int32Array): PostcopyHooks {
  return {
    openReturnPath: () => calls.log.push("open-return-path"),
    ping: (v) => calls.log.push(`ping ${v}`),
    postcopyRam: () => true,
    discard: (name, ranges) => {
      calls.log.push(`discard ${name} ${ranges.map(([s, l]) => `${s / 4096}+${l / 4096}`).join(",")}`);
      for (const [s, l] of ranges) for (let p = s / 4096; p < (s + l) / 4096; p++) Atomics.and(present, p >>> 5, ~(1 << (p & 31)));
    },
    listen: () => calls.log.push("listen"),
    run: (s) => {
      calls.log.push("run");
      calls.run = s;
    },
    recvBitmap: () => calls.log.push("recv-bitmap"),
    resume: () => calls.log.push("resume"),
    channelBroken: () => Promise.reject(new MigrationLoadError("the channel broke and nobody recovers it here")),
  };
}

function destination(): { dst: Machine; present: Int32Array; ram: RamLoader } {
  const dst = new Machine({ serialOut: () => {}, kernel: k, ramSize: SMALL_RAM });
  const present = new Int32Array(Math.ceil(PAGES / 32));
  return { dst, present, ram: new RamLoader({ ram: dst.ram.bytes, present }) };
}

describe("a postcopy stream", () => {
  it("gives the loader QEMU's commands in order, the devices at RUN, and every page", async () => {
    const { dst, present, ram } = destination();
    const calls: Calls = { log: [], run: null };
    const h = hooks(calls, present);
    const result = await loadMigrationStream(readerOf(good, 1000), {
      machineName: VIRT_MACHINE_NAME,
      ram,
      knownSections: () => dst.migrationEntries(),
      loadDevices: () => {
        throw new Error("a postcopy stream adopts its devices at RUN, not at EOF");
      },
      postcopy: { ...h, listen: () => { ram.postcopy = true; h.listen(); } },
    });
    expect(result.postcopy).toBe(true);
    expect(calls.log[0]).toBe("open-return-path");
    expect(calls.log[1]).toBe("ping 1");
    expect(calls.log.slice(3)).toEqual(["ping 2", "listen", "ping 3", "run", "ping 4"]);
    expect(calls.log[2]).toMatch(/^discard riscv_virt_board\.ram /);
    // The re-dirtied pages are among the discards (with every page never sent).
    const runs = calls.log[2].split(" ")[2].split(",").map((r) => r.split("+").map(Number) as [number, number]);
    for (const p of redirtied) expect(runs.some(([first, n]) => p >= first && p < first + n)).toBe(true);
    expect(runs.some(([first, n]) => 0 >= first && 0 < first + n)).toBe(false);
    expect(calls.run?.map((s) => s.idstr)).toEqual(src.migrationEntries().map((e) => e.idstr));
    expect(Buffer.from(dst.ram.bytes).equals(Buffer.from(src.ram.bytes))).toBe(true);
    for (let p = 0; p < PAGES; p++) expect((present[p >>> 5] >>> (p & 31)) & 1).toBe(1);
  });

  it("never overwrites a page that is already present once postcopy listens", async () => {
    const { dst, present, ram } = destination();
    const calls: Calls = { log: [], run: null };
    const h = hooks(calls, present);
    await loadMigrationStream(readerOf(good), {
      machineName: VIRT_MACHINE_NAME,
      ram,
      knownSections: () => dst.migrationEntries(),
      loadDevices: () => undefined,
      postcopy: {
        ...h,
        listen: () => {
          ram.postcopy = true;
          // The guest (here, the test) got page 300 first and wrote to it.
          dst.ram.bytes.fill(0xee, 300 * 4096, 301 * 4096);
          Atomics.or(present, 300 >>> 5, 1 << (300 & 31));
        },
      },
    });
    expect(dst.ram.bytes[300 * 4096]).toBe(0xee);
  });

  it("ends a damaged or cut postcopy stream with a MigrationLoadError, never a crash", async () => {
    let seed = 0x2545f491;
    const rand = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    // The commands and the package live in the stream's structure; aim flips there.
    const pkgAt = good.indexOf(Buffer.from([0x08, 0x00, 0x07, 0x00, 0x04]));
    expect(pkgAt).toBeGreaterThan(0);
    let refused = 0;
    let loaded = 0;
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(good);
      const flips = 1 + rand(3);
      for (let j = 0; j < flips; j++) {
        const at = rand(2) === 0 ? pkgAt - 400 + rand(1200) : rand(b.length);
        b[Math.max(0, Math.min(at, b.length - 1))] ^= 1 << rand(8);
      }
      const bytes = rand(4) === 0 ? b.subarray(0, rand(b.length)) : b;
      const { dst, present, ram } = destination();
      const calls: Calls = { log: [], run: null };
      const h = hooks(calls, present);
      try {
        await loadMigrationStream(readerOf(bytes, 1 + rand(5000)), {
          machineName: VIRT_MACHINE_NAME,
          ram,
          knownSections: () => dst.migrationEntries(),
          loadDevices: (s) => dst.load(s),
          postcopy: { ...h, listen: () => { ram.postcopy = true; } },
        });
        loaded++;
      } catch (e) {
        expect(e).toBeInstanceOf(MigrationLoadError);
        refused++;
      }
    }
    expect(refused + loaded).toBe(300);
    expect(refused).toBeGreaterThan(100);
  });
});
