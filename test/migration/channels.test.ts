// Migration channels over real sockets, processes and files, and QEMU 7.2's words for bad URIs
// and refused connections.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { listenIncoming, openOutgoing, parseMigrationUri } from "../../src/migration/channels.js";
import { QemuFileReader, QemuFileWriter } from "../../src/migration/qemu-file.js";

const dir = mkdtempSync(join(tmpdir(), "minivm-chan-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 1 MiB of a pattern, written through a QemuFileWriter. */
const payload = Buffer.from(Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + (i >>> 12)) & 0xff));

async function send(uri: string): Promise<void> {
  const out = await openOutgoing(uri);
  const f = new QemuFileWriter(out.stream);
  for (let i = 0; i < payload.length; i += 4096) f.putBytes(payload.subarray(i, i + 4096));
  await f.flush();
  expect(f.bytesWritten).toBe(payload.length);
  await out.close();
}

async function receive(stream: Readable): Promise<Buffer> {
  const r = new QemuFileReader(stream);
  const got = await r.getBytes(payload.length);
  expect(await r.peek8()).toBe(-1);
  return Buffer.from(got);
}

describe("migration URIs", () => {
  it("parse as QEMU 7.2 (and 8.2 for file:) spell them", () => {
    expect(parseMigrationUri("tcp:127.0.0.1:4444", "outgoing")).toEqual({ kind: "tcp", host: "127.0.0.1", port: "4444" });
    expect(parseMigrationUri("tcp:[::]:4444", "incoming")).toEqual({ kind: "tcp", host: "::", port: "4444" });
    expect(parseMigrationUri("tcp:0.0.0.0:0", "incoming")).toEqual({ kind: "tcp", host: "0.0.0.0", port: "0" });
    expect(parseMigrationUri("tcp:example.org:4444", "outgoing")).toEqual({ kind: "tcp", host: "example.org", port: "4444" });
    expect(parseMigrationUri("unix:/tmp/m.sock", "outgoing")).toEqual({ kind: "unix", path: "/tmp/m.sock" });
    expect(parseMigrationUri("exec:cat > /tmp/f", "outgoing")).toEqual({ kind: "exec", command: "cat > /tmp/f" });
    expect(parseMigrationUri("file:/tmp/f,offset=4096", "outgoing")).toEqual({ kind: "file", path: "/tmp/f", offset: 4096 });
    expect(parseMigrationUri("file:/tmp/f,offset=1M", "incoming")).toEqual({ kind: "file", path: "/tmp/f", offset: 1 << 20 });
    expect(parseMigrationUri("file:/tmp/f", "incoming")).toEqual({ kind: "file", path: "/tmp/f", offset: 0 });
  });

  it("refuse bad ones with QEMU's words (checked against qemu-system-riscv32 7.2)", () => {
    expect(() => parseMigrationUri("foo:bar", "outgoing")).toThrow(/^Parameter 'uri' expects a valid migration protocol$/);
    expect(() => parseMigrationUri("foo:bar", "incoming")).toThrow(/^unknown migration protocol: foo:bar$/);
    expect(() => parseMigrationUri("tcp:nohostport", "outgoing")).toThrow(/^error parsing address 'nohostport'$/);
    expect(() => parseMigrationUri("tcp:[::1:4", "outgoing")).toThrow(/^error parsing IPv6 address '\[::1:4'$/);
    expect(() => parseMigrationUri("unix:", "outgoing")).toThrow(/^invalid Unix socket address$/);
    expect(() => parseMigrationUri("file:/x,offset=lots", "outgoing")).toThrow(/^file URI has bad offset lots/);
  });

  it("report a refused connection as QEMU does", async () => {
    await expect(openOutgoing(`unix:${dir}/nobody.sock`)).rejects.toThrow(`Failed to connect to '${dir}/nobody.sock': No such file or directory`);
    const l = await listenIncoming("tcp:127.0.0.1:0");
    const port = l.address.split(":")[2];
    await l.close();
    await expect(openOutgoing(`tcp:127.0.0.1:${port}`)).rejects.toThrow(`Failed to connect to '127.0.0.1:${port}': Connection refused`);
    await expect(openOutgoing("tcp:nosuchhost.invalid:4444")).rejects.toThrow(/^address resolution failed for nosuchhost.invalid:4444: Name or service not known$/);
  });

  it("report a listener that cannot bind as QEMU does", async () => {
    const busy = await listenIncoming("tcp:127.0.0.1:0");
    await expect(listenIncoming(busy.address)).rejects.toThrow(/^Failed to find an available port: Address already in use$/);
    await busy.close();
    await expect(listenIncoming(`unix:${dir}/no/such/dir.sock`)).rejects.toThrow(`Failed to bind socket to ${dir}/no/such/dir.sock: No such file or directory`);
  });
});

describe("channels carry a stream", () => {
  it("over a unix socket", async () => {
    const path = join(dir, "mig.sock");
    const l = await listenIncoming(`unix:${path}`);
    expect(l.address).toBe(`unix:${path}`);
    const [got] = await Promise.all([l.accept().then(receive), send(`unix:${path}`)]);
    expect(got.equals(payload)).toBe(true);
    await l.close();
  });

  it("over tcp on 127.0.0.1 with port 0, reporting the chosen port", async () => {
    const l = await listenIncoming("tcp:127.0.0.1:0");
    expect(l.address).toMatch(/^tcp:127\.0\.0\.1:[1-9]\d*$/);
    expect(l.socketAddress).toEqual([{ type: "inet", host: "127.0.0.1", port: l.address.split(":")[2] }]);
    const [got] = await Promise.all([l.accept().then(receive), send(l.address)]);
    expect(got.equals(payload)).toBe(true);
    await l.close();
  });

  it("through exec: 'cat > FILE' on the way out and 'cat FILE' on the way in", async () => {
    const file = join(dir, "exec.mig");
    await send(`exec:cat > '${file}'`);
    expect(readFileSync(file).equals(payload)).toBe(true);
    const l = await listenIncoming(`exec:cat '${file}'`);
    const got = await receive(await l.accept());
    expect(got.equals(payload)).toBe(true);
    await l.close();
  });

  it("to and from file: with an offset", async () => {
    const file = join(dir, "file.mig");
    writeFileSync(file, "old content that file: truncates");
    await send(`file:${file},offset=8192`);
    const whole = readFileSync(file);
    expect(whole.length).toBe(8192 + payload.length);
    expect(whole.subarray(0, 8192).every((b) => b === 0)).toBe(true);
    const l = await listenIncoming(`file:${file},offset=8K`);
    const got = await receive(await l.accept());
    expect(got.equals(payload)).toBe(true);
    await l.close();
    await expect(listenIncoming(`file:${dir}/absent`)).rejects.toThrow(`Unable to open ${dir}/absent: No such file or directory`);
  });
});
