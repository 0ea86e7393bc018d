// A QMP monitor on a TLS chardev in a real minivm process: QEMU's -object / -chardev /
// -mon spelling (the chardev before its credentials), client certificates checked by an
// authz object, refused clients that leave the monitor serving, and objects changed at run
// time with object-add / object-del.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { startVm, BIN, type VmProcess } from "../helpers/vm.js";
import { QmpClient } from "../../src/qmp/client.js";
import { HAVE_OPENSSL, makePki, type Pki } from "./pki.js";
import { TlsQmp } from "./tls-qmp.js";

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

async function waitForStderr(vm: VmProcess, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!vm.stderr().includes(text)) {
    if (Date.now() > deadline) throw new Error(`stderr never said ${JSON.stringify(text)}: ${vm.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Run minivm with `args` and return its exit code and stderr (a start-up that must fail). */
function runToExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, "run", "-S", "--bios", "none", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("exit", (code) => resolve({ code, stderr }));
  });
}

describe.runIf(HAVE_OPENSSL)("a QMP monitor over TLS", () => {
  let pki: Pki;
  let vm: VmProcess;
  let port: number;
  let admin: QmpClient;
  const teacher = () => ({ ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
  const student = () => ({ ca: pki.caCert, cert: `${pki.otherClientDir}/client-cert.pem`, key: `${pki.otherClientDir}/client-key.pem` });

  beforeAll(async () => {
    pki = makePki();
    vm = await startVm([
      "--bios", "none",
      // The chardev names tls0 and auth0 before they exist on the command line.
      "-chardev", "socket,id=mon0,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=tls0,tls-authz=auth0",
      "-mon", "chardev=mon0,mode=control",
      "-object", `tls-creds-x509,id=tls0,dir=${pki.serverDir},endpoint=server,verify-peer=on`,
      "-object", `authz-simple,id=auth0,identity=${pki.clientDn.replace(/,/g, ",,")}`,
    ]);
    port = portOf(vm.addresses[1] as string);
    admin = await vm.connect();
  }, 60_000);
  afterAll(async () => {
    admin?.close();
    await vm?.kill();
  });

  it("serves an authorized client: greeting, commands, and out-of-band commands", async () => {
    const c = await TlsQmp.connect(port, teacher());
    const greeting = await c.negotiate();
    expect((greeting.QMP as { capabilities: string[] }).capabilities).toContain("oob");
    expect(await c.execute("query-status")).toEqual({ return: { status: "prelaunch", singlestep: false, running: false } });
    c.send({ "exec-oob": "x-query-bql", id: "oob-1" });
    const oob = await c.next();
    expect(oob).toMatchObject({ id: "oob-1", return: expect.any(Object) });
    c.close();
  });

  it("refuses a certificate outside the authz object after the handshake, in QEMU's words, and keeps serving", async () => {
    const keep = await TlsQmp.connect(port, teacher());
    await keep.negotiate();
    const c = await TlsQmp.connect(port, student());
    expect(await c.closedByServer()).toEqual([]);
    await waitForStderr(vm, `minivm: TLS handshake of character device mon0 failed: TLS x509 authz check for ${pki.otherClientDn} is denied`);
    // The client that was there keeps its session; a new one gets in.
    expect(await keep.execute("query-name")).toEqual({ return: {} });
    const again = await TlsQmp.connect(port, teacher());
    await again.negotiate();
    expect(await again.execute("query-name")).toEqual({ return: {} });
    keep.close();
    again.close();
  });

  it("refuses a client whose certificate another CA signed, and a client without a certificate", async () => {
    // TLS 1.3: the client's handshake ends before the server has checked its certificate, so
    // the refusal is a close without a byte of QMP.
    const stranger = await TlsQmp.connect(port, { ca: pki.caCert, cert: pki.wrongCaClientCert, key: pki.wrongCaClientKey });
    expect(await stranger.closedByServer()).toEqual([]);
    await waitForStderr(vm, "minivm: TLS handshake of character device mon0 failed: The certificate hasn't got a known issuer");
    const noCert = await TlsQmp.connect(port, { ca: pki.caCert });
    expect(await noCert.closedByServer()).toEqual([]);
    await waitForStderr(vm, "minivm: TLS handshake of character device mon0 failed: Verify failed: No certificate was found.");
    const c = await TlsQmp.connect(port, teacher());
    await c.negotiate();
    c.close();
  });

  it("gives a plaintext client nothing (no greeting) and serves the next TLS client", async () => {
    const plain = await TlsQmp.plain(port);
    plain.send('{"execute": "qmp_capabilities"}\n');
    expect(await plain.closedByServer()).toEqual([]);
    const c = await TlsQmp.connect(port, teacher());
    await c.negotiate();
    expect(await c.execute("query-status")).toMatchObject({ return: { status: "prelaunch" } });
    c.close();
  });

  it("serves several TLS clients at once", async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => TlsQmp.connect(port, teacher())));
    await Promise.all(clients.map((c) => c.negotiate()));
    const replies = await Promise.all(clients.map((c, i) => c.execute("query-name").then((r) => [i, r])));
    expect(replies.map(([, r]) => r)).toEqual([{ return: {} }, { return: {} }, { return: {} }, { return: {} }]);
    for (const c of clients) c.close();
  });

  it("object-add / object-del / query-objects change who may connect, at once", async () => {
    const objects = (await admin.execute("query-objects")) as Array<{ id: string; "qom-type": string }>;
    expect(objects.map((o) => [o.id, o["qom-type"]])).toEqual([
      ["tls0", "tls-creds-x509"],
      ["auth0", "authz-simple"],
    ]);
    expect(await admin.execute("qom-list", { path: "/objects" })).toEqual([
      { name: "type", type: "string" },
      { name: "tls0", type: "child<tls-creds-x509>" },
      { name: "auth0", type: "child<authz-simple>" },
    ]);
    expect(await admin.execute("qom-list-types", { implements: "tls-creds" })).toEqual([
      { name: "tls-creds-psk", parent: "tls-creds" },
      { name: "tls-creds-x509", parent: "tls-creds" },
    ]);
    // Without its authz object the chardev denies everyone, as QEMU does.
    await admin.execute("object-del", { id: "auth0" });
    const denied = await TlsQmp.connect(port, teacher());
    expect(await denied.closedByServer()).toEqual([]);
    // A list that lets in every certificate of the class.
    await admin.execute("object-add", {
      "qom-type": "authz-list",
      id: "auth0",
      policy: "deny",
      rules: [{ match: "C=GB,O=minivm tests,CN=*", policy: "allow", format: "glob" }],
    });
    const s = await TlsQmp.connect(port, student());
    await s.negotiate();
    expect(await s.execute("query-name")).toEqual({ return: {} });
    s.close();
    await expect(admin.execute("object-del", { id: "nope" })).rejects.toThrow("object 'nope' not found");
    await expect(admin.execute("object-add", { "qom-type": "tls-creds-x509", id: "bad", dir: "/nonexistent", endpoint: "server" })).rejects.toThrow(
      "Unable to access credentials /nonexistent/ca-cert.pem: No such file or directory",
    );
    await expect(admin.execute("object-add", { "qom-type": "tls-creds-x509", id: "tls0", dir: pki.serverDir })).rejects.toThrow(
      "attempt to add duplicate property 'tls0' to object (type 'container')",
    );
    await expect(admin.execute("object-add", { "qom-type": "rng-random", id: "r" } as never)).rejects.toThrow(/qom-type/);
  });

  it("refuses to start half-configured: bad credentials or a chardev naming none", async () => {
    const missing = await runToExit(["-object", "tls-creds-x509,id=tls0,dir=/nonexistent,endpoint=server"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("Unable to access credentials /nonexistent/ca-cert.pem: No such file or directory");
    const unknown = await runToExit(["-chardev", "socket,id=m,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=nope", "-mon", "chardev=m,mode=control"]);
    expect(unknown.stderr).toContain("No TLS credentials with id 'nope'");
    const client = await runToExit([
      "-object", `tls-creds-x509,id=c,dir=${pki.clientDir},endpoint=client`,
      "-chardev", "socket,id=m,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=c", "-mon", "chardev=m,mode=control",
    ]);
    expect(client.stderr).toContain("Expected TLS credentials for a server endpoint");
    const unix = await runToExit(["-chardev", "socket,id=m,path=/tmp/x.sock,server=on,wait=off,tls-creds=c", "-mon", "chardev=m,mode=control"]);
    expect(unix.stderr).toContain("TLS can only be used over TCP socket");
    const expired = await runToExit(["-object", `tls-creds-x509,id=t,dir=${pki.expiredServerDir},endpoint=server`]);
    expect(expired.stderr).toContain(`The server certificate ${pki.expiredServerDir}/server-cert.pem has expired`);
  });
});

/** openssl s_client with a pre-shared key: the QMP lines the server sent before it closed (or we had two replies). */
function pskClient(port: number, identity: string, hexKey: string): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn("openssl", ["s_client", "-quiet", "-connect", `127.0.0.1:${port}`, "-tls1_2", "-psk_identity", identity, "-psk", hexKey], { stdio: ["pipe", "pipe", "ignore"] });
    let out = "";
    const timer = setTimeout(() => p.kill(), 10_000);
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if ((out.match(/"return"/g) ?? []).length >= 2) p.kill();
    });
    p.on("exit", () => {
      clearTimeout(timer);
      resolve(out);
    });
    // stdin stays open until the replies are in: an EOF would close the TLS session first.
    p.stdin.write('{"execute": "qmp_capabilities"}\n{"execute": "query-name"}\n');
  });
}

describe.runIf(HAVE_OPENSSL)("a QMP monitor over TLS with pre-shared keys", () => {
  let pki: Pki;
  let vm: VmProcess;
  let port: number;
  beforeAll(async () => {
    pki = makePki();
    vm = await startVm([
      "--bios", "none",
      "-object", `tls-creds-psk,id=psk0,dir=${pki.pskServerDir},endpoint=server`,
      "-object", "authz-simple,id=auth0,identity=alice",
      "-chardev", "socket,id=mon0,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=psk0,tls-authz=auth0",
      "-mon", "chardev=mon0,mode=control",
    ]);
    port = portOf(vm.addresses[1] as string);
  }, 60_000);
  afterAll(async () => {
    await vm?.kill();
  });

  it("lets in the identity with the right key (openssl s_client -psk), checks the username against authz, refuses a wrong key", async () => {
    const out = await pskClient(port, "alice", "0123456789abcdef0123456789abcdef");
    expect(out).toContain('"QMP"');
    expect((out.match(/"return": \{\}/g) ?? []).length).toBe(2);
    // bob's key is in keys.psk, but the authz object allows only alice.
    expect(await pskClient(port, "bob", "fedcba9876543210fedcba9876543210")).not.toContain('"QMP"');
    await waitForStderr(vm, "TLS PSK authz check for bob is denied");
    expect(await pskClient(port, "alice", "00000000000000000000000000000000")).not.toContain('"QMP"');
    expect(await pskClient(port, "alice", "0123456789abcdef0123456789abcdef")).toContain('"QMP"');
  });
});
