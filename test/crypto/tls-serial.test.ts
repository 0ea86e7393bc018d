// The guest's serial console on a TLS chardev (`-chardev socket,...,tls-creds=ID -serial
// chardev:ID`): a client with a good certificate reaches the teaching guest's shell; a
// plaintext client gets none of the console.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import { startVm, type VmProcess } from "../helpers/vm.js";
import { diskCopy, PROMPT, removeDiskCopies } from "../firmware/console.js";
import { HAVE_OPENSSL, makePki, type Pki } from "./pki.js";

async function serialPort(vm: VmProcess): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const m = /serial console listening on tcp:[^\s]*:(\d+) \(TLS\)/.exec(vm.stderr());
    if (m !== null) return Number(m[1]);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no serial announcement: ${vm.stderr()}`);
}

/** Everything a connection receives until `until` matches or the server closes it. */
function collect(socket: net.Socket, until: RegExp, send: string): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (until.test(text)) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.on("close", () => resolve(text));
    socket.on("error", () => undefined);
    socket.write(send);
  });
}

describe.runIf(HAVE_OPENSSL)("the serial console over TLS", () => {
  let pki: Pki;
  let vm: VmProcess;
  let port: number;
  beforeAll(async () => {
    pki = makePki();
    vm = await startVm(
      [
        diskCopy(),
        "-object", `tls-creds-x509,id=tls0,dir=${pki.serverDir},endpoint=server`,
        "-chardev", "socket,id=con0,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=tls0",
        "-serial", "chardev:con0",
      ],
      { paused: false },
    );
    port = await serialPort(vm);
  }, 60_000);
  afterAll(async () => {
    await vm?.kill();
    removeDiskCopies();
  });

  it("a plaintext client gets nothing of the console", async () => {
    const plain = net.connect(port, "127.0.0.1");
    await new Promise((r) => plain.once("connect", r));
    const got = await collect(plain, /minivm\$/, "help\r\n");
    expect(got).not.toContain(PROMPT);
  });

  it("a client with a certificate reaches the guest's shell", async () => {
    // The guest may still be booting: press Enter until the prompt comes back.
    let text = "";
    for (let attempt = 0; attempt < 20 && !text.includes(PROMPT); attempt++) {
      const s = tls.connect({
        host: "127.0.0.1",
        port,
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.clientCert),
        key: readFileSync(pki.clientKey),
        servername: "localhost",
      });
      await new Promise((r) => s.once("secureConnect", r));
      text = await Promise.race([collect(s, /minivm\$ /, "\n"), new Promise<string>((r) => setTimeout(() => r(""), 1000))]);
      s.destroy();
    }
    expect(text).toContain(PROMPT);
  });
});
