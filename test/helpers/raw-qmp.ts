// A QMP connection at the byte level, for tests that compare the exact text a server writes
// (minivm's or QEMU's): send anything, read line by line.
import * as net from "node:net";
import { SocketLines } from "./socket-lines.js";

export class RawQmp {
  private readonly in: SocketLines;
  private seq = 0;

  private constructor(private readonly socket: net.Socket) {
    this.in = new SocketLines(socket);
  }

  /** Connect and read the greeting (returned by `greeting`). */
  static async open(path: string): Promise<RawQmp> {
    const s = net.connect(path);
    await new Promise((resolve, reject) => {
      s.once("connect", resolve);
      s.once("error", reject);
    });
    const r = new RawQmp(s);
    r.greeting = await r.line();
    return r;
  }

  greeting = "";

  send(text: string | Uint8Array): void {
    this.socket.write(text);
  }

  /** The next line the server writes (without its CRLF). */
  async line(): Promise<string> {
    const l = await this.in.next();
    if (l === null) throw new Error("the QMP server closed the connection");
    return l;
  }

  /** Lines up to and including the first that `done` accepts. */
  async until(done: (line: string) => boolean): Promise<string[]> {
    for (;;) {
      const i = this.in.lines.findIndex(done);
      if (i >= 0) return this.in.lines.splice(0, i + 1);
      if (this.in.closed) throw new Error("the QMP server closed the connection");
      await this.in.wait();
    }
  }

  /** Negotiate (with oob). */
  async negotiate(): Promise<void> {
    this.send('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}');
    await this.line();
  }

  /** Send `text`, then a sentinel request; every line before the sentinel's reply. */
  async exchange(text: string): Promise<string[]> {
    const id = `sentinel-${this.seq++}`;
    this.send(text);
    this.send(`{"execute": "query-name", "id": "${id}"}`);
    return (await this.until((l) => l.includes(`"id": "${id}"`))).slice(0, -1);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Waits (up to 30 s) until a QMP server answers on the unix socket `path`, as a starting QEMU's does. */
export async function waitForQmpSocket(path: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      (await RawQmp.open(path)).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`the QMP socket ${path} did not appear`);
}
