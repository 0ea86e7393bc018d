// A QMP connection at the byte level, for tests that compare the exact text a server writes
// (minivm's or QEMU's): send anything, read line by line.
import * as net from "node:net";

export class RawQmp {
  private buf = "";
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  private seq = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        this.lines.push(this.buf.slice(0, i).replace(/\r$/, ""));
        this.buf = this.buf.slice(i + 1);
      }
      this.waiter?.();
    });
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
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return l;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Lines up to and including the first that `done` accepts. */
  async until(done: (line: string) => boolean): Promise<string[]> {
    for (;;) {
      const i = this.lines.findIndex(done);
      if (i >= 0) return this.lines.splice(0, i + 1);
      await new Promise<void>((r) => (this.waiter = r));
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
