// `--serial unix:PATH`: the guest's console on a unix socket (server, nowait, as QEMU's
// `-serial unix:PATH,server=on,wait=off`). Output while no client is connected is dropped;
// one client at a time types to the guest.
import * as net from "node:net";
import { rmSync } from "node:fs";
import { listenUnixPrivate } from "../core/unix-socket.js";

export interface SerialSocket {
  write(bytes: Uint8Array): void;
  close(): void;
}

export async function openSerialSocket(path: string, toGuest: (bytes: Uint8Array) => void): Promise<SerialSocket> {
  let client: net.Socket | null = null;
  const server = net.createServer((socket) => {
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
  });
  await listenUnixPrivate(server, path);
  return {
    write: (bytes) => {
      if (client?.writable === true) client.write(bytes);
    },
    close: () => {
      client?.destroy();
      server.close();
      rmSync(path, { force: true });
    },
  };
}
