// QemuFileWriter and QemuFileReader: QEMU's big-endian encoding over Node streams, with
// back-pressure, sticky write errors, and reads that span chunk boundaries.

import { Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { QemuFileReader, QemuFileWriter, StreamEndedError } from "../../src/migration/qemu-file.js";
import { Collector } from "./stream-helpers.js";

function oneByteChunks(b: Uint8Array): Readable {
  return Readable.from(Array.from(b, (x) => Buffer.of(x)));
}

describe("QemuFileWriter", () => {
  it("writes big-endian values and counted strings in order", async () => {
    const sink = new Collector();
    const f = new QemuFileWriter(sink);
    f.put8(0x1ff);
    f.put16(0xabcd);
    f.put32(0xdeadbeef);
    f.put64(0x0123456789abcdefn);
    f.put64n(2 ** 40 + 5);
    f.putCountedString("ram");
    f.putBytes(Uint8Array.of(1, 2));
    expect(f.bytesWritten).toBe(1 + 2 + 4 + 8 + 8 + 4 + 2);
    expect(f.bytesFlushed).toBe(0);
    await f.flush();
    expect(sink.bytes().toString("hex")).toBe("ff" + "abcd" + "deadbeef" + "0123456789abcdef" + "0000010000000005" + "03" + "72616d" + "0102");
    expect(() => f.putCountedString("x".repeat(256))).toThrow(/longer than 255/);
  });

  it("waits in flush() until a slow sink drains, and loses nothing", async () => {
    const got: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _e, cb) {
        got.push(chunk);
        setImmediate(cb);
      },
    });
    const f = new QemuFileWriter(slow);
    const data = Buffer.from(Uint8Array.from({ length: 300_000 }, (_, i) => i & 0xff));
    for (let i = 0; i < data.length; i += 1000) f.putBytes(data.subarray(i, i + 1000));
    await f.flush();
    // Resolved only once the sink asked for more.
    expect(slow.writableNeedDrain).toBe(false);
    await new Promise<void>((resolve) => slow.end(resolve));
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });

  it("keeps the sink's first error: flush rejects with it and later puts throw it", async () => {
    const broken = new Writable({
      write(_chunk, _e, cb) {
        cb(new Error("write EPIPE"));
      },
    });
    const f = new QemuFileWriter(broken);
    f.putBytes(new Uint8Array(100_000));
    await expect(f.flush()).rejects.toThrow("write EPIPE");
    expect(f.error?.message).toBe("write EPIPE");
    expect(() => f.put32(1)).toThrow("write EPIPE");
  });
});

describe("QemuFileReader", () => {
  it("reads every width across one-byte chunks", async () => {
    const bytes = Buffer.from("ff" + "abcd" + "deadbeef" + "0123456789abcdef" + "03" + "72616d" + "0102030405", "hex");
    const r = new QemuFileReader(oneByteChunks(bytes));
    expect(await r.get8()).toBe(0xff);
    expect(await r.get16()).toBe(0xabcd);
    expect(await r.get32()).toBe(0xdeadbeef);
    expect(await r.get64()).toBe(0x0123456789abcdefn);
    expect(await r.getCountedString()).toBe("ram");
    expect(await r.peek8()).toBe(1);
    expect(Array.from(await r.getBytes(2))).toEqual([1, 2]);
    await r.skip(2);
    expect(r.bytesRead).toBe(bytes.length - 1);
    await r.ensure(1);
    expect(r.has(1)).toBe(true);
    expect(r.u8()).toBe(5);
    expect(await r.peek8()).toBe(-1);
  });

  it("says where the input ended when it ends inside a value", async () => {
    const r = new QemuFileReader(oneByteChunks(Uint8Array.of(1, 2, 3, 4, 5, 6)));
    await r.get32();
    const e = await r.get32().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StreamEndedError);
    expect((e as Error).message).toBe("load of migration failed: Input/output error: the stream ended after 6 bytes, 2 more needed");
    await expect(new QemuFileReader(Readable.from([Buffer.of(3, 0x61)])).getCountedString()).rejects.toThrow(StreamEndedError);
    await expect(new QemuFileReader(Readable.from([Buffer.alloc(10)])).getBytes(11)).rejects.toThrow(StreamEndedError);
    await expect(new QemuFileReader(Readable.from([Buffer.alloc(10)])).skip(11)).rejects.toThrow(StreamEndedError);
  });

  it("passes on the source's error", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error("read ECONNRESET"));
      },
    });
    await expect(new QemuFileReader(failing).get8()).rejects.toThrow("read ECONNRESET");
  });
});
