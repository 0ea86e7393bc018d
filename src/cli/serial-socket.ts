// `--serial unix:PATH`: the guest's console on a unix socket (server, nowait, as QEMU's
// `-serial unix:PATH,server=on,wait=off`). Output while no client is connected is dropped;
// one client at a time types to the guest. `--serial chardev:ID` with a TCP `-chardev
// socket,...,server=on[,tls-creds=ID[,tls-authz=ID]]` is the same console on TCP, over TLS
// when the chardev says so (src/crypto/tls-channel.ts).
import * as net from "node:net";
import { rmSync } from "node:fs";
import { listenUnixPrivate } from "../core/unix-socket.js";
import type { ChardevTls } from "../core/protocol.js";
import { acceptTls } from "../crypto/tls-channel.js";
import type { AuthzLookup } from "../crypto/objects.js";

export interface SerialSocket {
  write(bytes: Uint8Array): void;
  close(): void;
  /** Where it listens (tcp:HOST:PORT with the real port), for the announcement. */
  address: string;
}

function serialServer(toGuest: (bytes: Uint8Array) => void, secure: ((raw: net.Socket) => Promise<net.Socket>) | null) {
  let client: net.Socket | null = null;
  const take = (socket: net.Socket): void => {
    if (client !== null) {
      socket.end("minivm: the serial console already has a client\r\n");
      return;
    }
    client = socket;
    socket.on("data", (d: Buffer) => toGuest(new Uint8Array(d)));
    socket.on("close", () => {
      if (client === socket) client = null;
    });
    socket.on("error", () => socket.destroy());
  };
  const server = net.createServer((raw) => {
    if (secure === null) take(raw);
    else secure(raw).then(take, () => undefined);
  });
  return {
    server,
    write: (bytes: Uint8Array): void => {
      if (client?.writable === true) client.write(bytes);
    },
    drop: (): void => {
      client?.destroy();
      server.close();
    },
  };
}

export async function openSerialSocket(path: string, toGuest: (bytes: Uint8Array) => void): Promise<SerialSocket> {
  const s = serialServer(toGuest, null);
  await listenUnixPrivate(s.server, path);
  return {
    address: `unix:${path}`,
    write: s.write,
    close: () => {
      s.drop();
      rmSync(path, { force: true });
    },
  };
}

/** The console on a TCP chardev, over TLS when it has tls-creds (authz objects from the command line). */
export async function openSerialTcp(
  address: { host: string; port: number },
  tls: ChardevTls | null,
  authz: AuthzLookup,
  toGuest: (bytes: Uint8Array) => void,
): Promise<SerialSocket> {
  const secure =
    tls === null
      ? null
      : (raw: net.Socket): Promise<net.Socket> =>
          acceptTls(raw, tls.creds, tls.authz === null ? null : { id: tls.authz, lookup: authz }).catch((e: Error) => {
            process.stderr.write(`minivm: TLS handshake of character device ${tls.chardev} failed: ${e.message}\n`);
            throw e;
          });
  const s = serialServer(toGuest, secure);
  await new Promise<void>((resolve, reject) => {
    s.server.once("error", (e) => reject(new Error(`Failed to bind socket: ${e.message}`)));
    s.server.listen(address.port, address.host, resolve);
  });
  const bound = s.server.address() as net.AddressInfo;
  return { address: `tcp:${address.host}:${bound.port}`, write: s.write, close: s.drop };
}
