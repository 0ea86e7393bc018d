// QEMU 7.2's own Python QMP client (python/qemu/qmp) and socat's OPENSSL address talk to a
// minivm monitor over TLS, x509 with and without client verification; a wrong CA, a
// certificate outside the authz list and a plaintext client are refused while the monitor
// keeps serving. Credentials come from openssl at run time (test/crypto/pki.ts).

import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { qemuSourceFile, requireTool } from "../helpers/interop.js";
import { startVm, type VmProcess } from "../helpers/vm.js";
import { HAVE_OPENSSL, makePki, type Pki } from "../crypto/pki.js";
import { TlsQmp } from "../crypto/tls-qmp.js";

const run = promisify(execFile);
const qmpPackage = qemuSourceFile("python/qemu/qmp/qmp_client.py");
const haveSocat = requireTool("socat", "socat");
const SCRIPT = join(import.meta.dirname, "qmp-tls-client.py");

interface Step {
  step: string;
  value?: unknown;
  error?: string;
  oob?: boolean;
}

async function python(args: string[]): Promise<Map<string, Step>> {
  const pythonPath = dirname(dirname(dirname(qmpPackage as string)));
  const { stdout } = await run("python3", [SCRIPT, ...args], { env: { ...process.env, PYTHONPATH: pythonPath }, timeout: 30_000 });
  const steps = stdout.trim().split("\n").map((l) => JSON.parse(l) as Step);
  return new Map(steps.map((s) => [s.step, s]));
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

describe.runIf(HAVE_OPENSSL && qmpPackage !== null)("QEMU's Python QMP client over TLS", () => {
  let pki: Pki;
  let vm: VmProcess;
  let verified: number;
  let open: number;
  const expectServing = async (): Promise<void> => {
    const good = await python(["127.0.0.1", String(verified), pki.caCert, pki.clientCert, pki.clientKey]);
    expect(good.get("query-name")?.value).toEqual({});
  };

  beforeAll(async () => {
    pki = makePki();
    vm = await startVm([
      "--bios", "none",
      "-object", `tls-creds-x509,id=tls0,dir=${pki.serverDir},endpoint=server,verify-peer=on`,
      "-object", `tls-creds-x509,id=tls1,dir=${pki.serverDir},endpoint=server,verify-peer=off`,
      "-object", `authz-list,id=auth0,policy=deny,rules.0.match=${pki.clientDn.replace(/,/g, ",,")},rules.0.policy=allow`,
      "-chardev", "socket,id=verified,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=tls0,tls-authz=auth0",
      "-mon", "chardev=verified,mode=control",
      "-chardev", "socket,id=open,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=tls1",
      "-mon", "chardev=open,mode=control",
    ]);
    verified = portOf(vm.addresses[1] as string);
    open = portOf(vm.addresses[2] as string);
  }, 60_000);
  afterAll(async () => {
    await vm?.kill();
  });

  it("x509 with client verification: commands and an out-of-band command", async () => {
    const s = await python(["127.0.0.1", String(verified), pki.caCert, pki.clientCert, pki.clientKey]);
    expect(s.get("connect")).toEqual({ step: "connect", value: "ok", oob: true });
    expect(s.get("query-status")?.value).toEqual({ status: "prelaunch", singlestep: false, running: false });
    expect(s.get("oob")?.value).toEqual(["acquisitions", "contended", "threads"]);
    expect(s.get("query-name")?.value).toEqual({});
  });

  it("x509 without client verification: no client certificate needed", async () => {
    const s = await python(["127.0.0.1", String(open), pki.caCert]);
    expect(s.get("connect")?.value).toBe("ok");
    expect(s.get("query-status")?.value).toMatchObject({ status: "prelaunch" });
  });

  it("refuses a client that trusts another CA (the client refuses the server) and keeps serving", async () => {
    const s = await python(["127.0.0.1", String(verified), pki.wrongCaCert, pki.clientCert, pki.clientKey]);
    expect(s.get("connect")?.error).toMatch(/CERTIFICATE_VERIFY_FAILED/);
    await expectServing();
  });

  it("refuses a client certificate signed by another CA, and one outside the authz list", async () => {
    const stranger = await python(["127.0.0.1", String(verified), pki.caCert, pki.wrongCaClientCert, pki.wrongCaClientKey]);
    expect(stranger.get("connect")?.error).toBeDefined();
    expect(stranger.has("query-status")).toBe(false);
    const student = await python(["127.0.0.1", String(verified), pki.caCert, `${pki.otherClientDir}/client-cert.pem`, `${pki.otherClientDir}/client-key.pem`]);
    expect(student.get("connect")?.error).toBeDefined();
    // The monitor thread's stderr reaches the process's a moment later.
    const denied = `TLS x509 authz check for ${pki.otherClientDn} is denied`;
    for (let i = 0; i < 200 && !vm.stderr().includes(denied); i++) await new Promise((r) => setTimeout(r, 25));
    expect(vm.stderr()).toContain(denied);
    await expectServing();
  });

  it("a plaintext client gets no greeting; the TLS client after it is served", async () => {
    const plain = await TlsQmp.plain(verified);
    plain.send('{"execute": "qmp_capabilities"}\n');
    expect(await plain.closedByServer()).toEqual([]);
    await expectServing();
  });

  it.runIf(haveSocat)("socat OPENSSL: with a client certificate runs commands", async () => {
    const input = '{"execute": "qmp_capabilities"}\n{"execute": "query-name"}\n';
    const child = execFile("socat", ["-t", "5", "-", `OPENSSL:127.0.0.1:${verified},cafile=${pki.caCert},cert=${pki.clientCert},key=${pki.clientKey},commonname=localhost`], { timeout: 20_000 });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      // Both replies are in: done.
      if ((out.match(/"return"/g) ?? []).length >= 2) child.kill();
    });
    // stdin stays open: socat would pass its EOF on as a TLS close before the replies came.
    child.stdin?.write(input);
    await new Promise((r) => child.on("exit", r));
    expect(out).toContain('"QMP"');
    expect((out.match(/"return": \{\}/g) ?? []).length).toBe(2);
  });
});
