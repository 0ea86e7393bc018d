import { afterEach, beforeAll, describe, expect, it } from "vitest";
import * as net from "node:net";
import type { TLSSocket } from "node:tls";
import { ObjectRegistry, authzLookupOf } from "../../src/crypto/objects.js";
import { acceptTls, cloneableTls, connectTls, migrationTls, secureIncoming, secureOutgoing, type TlsAuthz } from "../../src/crypto/tls-channel.js";
import type { TlsCredsMaterial } from "../../src/crypto/tls-creds.js";
import { HAVE_OPENSSL, makePki, type Pki } from "./pki.js";

/** A listener that runs acceptTls on each connection and records what happened. */
async function tlsListener(creds: TlsCredsMaterial, authz: TlsAuthz | null) {
  const results: Array<Promise<TLSSocket>> = [];
  const server = net.createServer((raw) => {
    const p = acceptTls(raw, creds, authz);
    p.then((s) => s.pipe(s), () => undefined); // an echo server once secure
    results.push(p);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, results };
}

function rawConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

function echo(s: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once("data", (d: Buffer) => resolve(d.toString()));
    s.once("close", () => reject(new Error("closed before the echo")));
    s.write(text);
  });
}

describe.runIf(HAVE_OPENSSL)("TLS over a connected socket", () => {
  let pki: Pki;
  let reg: ObjectRegistry;
  const servers: net.Server[] = [];
  beforeAll(() => {
    pki = makePki();
    reg = new ObjectRegistry();
    reg.add({ "qom-type": "tls-creds-x509", id: "srv", dir: pki.serverDir, endpoint: "server" });
    reg.add({ "qom-type": "tls-creds-x509", id: "srv-noverify", dir: pki.serverDir, endpoint: "server", "verify-peer": false });
    reg.add({ "qom-type": "tls-creds-x509", id: "cli", dir: pki.clientDir, endpoint: "client" });
    reg.add({ "qom-type": "tls-creds-x509", id: "other", dir: pki.otherClientDir, endpoint: "client" });
    reg.add({ "qom-type": "tls-creds-x509", id: "stranger", dir: pki.wrongCaClientDir, endpoint: "client", "sanity-check": true });
    reg.add({ "qom-type": "tls-creds-psk", id: "psk-srv", dir: pki.pskServerDir, endpoint: "server" });
    reg.add({ "qom-type": "tls-creds-psk", id: "psk-cli", dir: pki.pskClientDir, endpoint: "client", username: "alice" });
    reg.add({ "qom-type": "tls-creds-psk", id: "psk-bad", dir: pki.pskWrongClientDir, endpoint: "client", username: "alice" });
    reg.add({ "qom-type": "authz-simple", id: "teacher", identity: pki.clientDn });
  });
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  it("x509 with client verification: data flows and the server sees QEMU's DN", async () => {
    const l = await tlsListener(reg.tlsCreds("srv", "server"), { id: "teacher", lookup: authzLookupOf(reg.authzDefinitions()) });
    servers.push(l.server);
    const s = await connectTls(await rawConnect(l.port), reg.tlsCreds("cli", "client"), "localhost");
    expect(await echo(s, "hello")).toBe("hello");
    s.destroy();
  });

  it("authz refuses a good certificate with another DN, in QEMU's words", async () => {
    const l = await tlsListener(reg.tlsCreds("srv", "server"), { id: "teacher", lookup: authzLookupOf(reg.authzDefinitions()) });
    servers.push(l.server);
    const s = await connectTls(await rawConnect(l.port), reg.tlsCreds("other", "client"), "127.0.0.1");
    await expect(l.results[0]).rejects.toThrow(`TLS x509 authz check for ${pki.otherClientDn} is denied`);
    await expect(echo(s, "x")).rejects.toThrow();
  });

  it("a missing authz object denies", async () => {
    const l = await tlsListener(reg.tlsCreds("srv", "server"), { id: "gone", lookup: () => null });
    servers.push(l.server);
    await connectTls(await rawConnect(l.port), reg.tlsCreds("cli", "client"), "localhost");
    await expect(l.results[0]).rejects.toThrow(/authz check for .* is denied/);
  });

  it("a client from another CA is refused by the server; the client refuses a server its CA did not sign", async () => {
    const l = await tlsListener(reg.tlsCreds("srv", "server"), null);
    servers.push(l.server);
    const attempt = connectTls(await rawConnect(l.port), reg.tlsCreds("stranger", "client"), "localhost");
    await expect(attempt).rejects.toThrow("The certificate hasn't got a known issuer");
    await expect(l.results[0]).rejects.toThrow();
  });

  it("the client checks the host name", async () => {
    const l = await tlsListener(reg.tlsCreds("srv", "server"), null);
    servers.push(l.server);
    await expect(connectTls(await rawConnect(l.port), reg.tlsCreds("cli", "client"), "example.org")).rejects.toThrow(
      "Certificate does not match the hostname example.org",
    );
  });

  it("verify-peer=off lets a client without a certificate in", async () => {
    const l = await tlsListener(reg.tlsCreds("srv-noverify", "server"), null);
    servers.push(l.server);
    const anon = new ObjectRegistry();
    const dir = pki.root + "/anon";
    (await import("node:fs")).mkdirSync(dir);
    (await import("node:fs")).copyFileSync(pki.caCert, dir + "/ca-cert.pem");
    anon.add({ "qom-type": "tls-creds-x509", id: "c", dir, endpoint: "client" });
    const s = await connectTls(await rawConnect(l.port), anon.tlsCreds("c", "client"), "localhost");
    expect(await echo(s, "hi")).toBe("hi");
    s.destroy();
  });

  it("a plaintext client gets no usable answer and the listener keeps serving", async () => {
    const l = await tlsListener(reg.tlsCreds("srv", "server"), null);
    servers.push(l.server);
    const plain = await rawConnect(l.port);
    const got: Buffer[] = [];
    plain.on("data", (d: Buffer) => got.push(d));
    plain.write('{"execute":"qmp_capabilities"}\n');
    await new Promise((r) => plain.once("close", r));
    await expect(l.results[0]).rejects.toThrow(/TLS handshake failed/);
    expect(Buffer.concat(got).toString()).not.toContain("QMP");
    const s = await connectTls(await rawConnect(l.port), reg.tlsCreds("cli", "client"), "localhost");
    expect(await echo(s, "still here")).toBe("still here");
    s.destroy();
  });

  it("PSK: the right key connects, a wrong key is refused", async () => {
    const l = await tlsListener(reg.tlsCreds("psk-srv", "server"), null);
    servers.push(l.server);
    const s = await connectTls(await rawConnect(l.port), reg.tlsCreds("psk-cli", "client"), null);
    expect(await echo(s, "psk")).toBe("psk");
    s.destroy();
    await expect(connectTls(await rawConnect(l.port), reg.tlsCreds("psk-bad", "client"), null)).rejects.toThrow(/TLS handshake failed/);
  });

  it("migration TLS crosses to a worker thread as plain data, authz snapshot included", async () => {
    const dst = migrationTls(reg, { "tls-creds": "srv", "tls-authz": "teacher" }, "destination");
    // structuredClone is what postMessage / workerData do: it throws on a function.
    expect(() => structuredClone(dst)).toThrow();
    const copy = structuredClone(cloneableTls(dst));
    if (copy === null) throw new Error("no TLS");
    const results: Array<Promise<unknown>> = [];
    const server = net.createServer((raw) => results.push(secureIncoming(raw, copy)));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const src = (creds: string) => structuredClone(cloneableTls(migrationTls(reg, { "tls-creds": creds, "tls-hostname": "localhost" }, "source")));
    await secureOutgoing(await rawConnect(port), src("cli") as NonNullable<ReturnType<typeof src>>, null);
    await expect(results[0]).resolves.toBeDefined();
    await secureOutgoing(await rawConnect(port), src("other") as NonNullable<ReturnType<typeof src>>, null);
    await expect(results[1]).rejects.toThrow(`TLS x509 authz check for ${pki.otherClientDn} is denied`);
    expect(migrationTls(reg, { "tls-creds": "nope" }, "source")).toEqual({ error: "No TLS credentials with id 'nope'" });
    expect(migrationTls(reg, { "tls-creds": "" }, "source")).toBeNull();
  });
});
