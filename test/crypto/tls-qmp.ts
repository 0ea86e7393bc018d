// A QMP client over TLS for tests: Node's own TLS client with the test PKI, line by line.
import * as net from "node:net";
import * as tls from "node:tls";
import { readFileSync } from "node:fs";

export class TlsQmp {
  private buf = "";
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(readonly socket: net.Socket) {
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
    socket.on("close", () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on("error", () => undefined);
  }

  /** Connect with TLS (ca, optional client cert/key files); resolves after the handshake. */
  static connect(port: number, files: { ca: string; cert?: string; key?: string }): Promise<TlsQmp> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port,
        ca: readFileSync(files.ca),
        cert: files.cert === undefined ? undefined : readFileSync(files.cert),
        key: files.key === undefined ? undefined : readFileSync(files.key),
        checkServerIdentity: (_h, cert) => tls.checkServerIdentity("localhost", cert),
      });
      s.once("secureConnect", () => resolve(new TlsQmp(s)));
      s.once("error", reject);
    });
  }

  /** A plain TCP connection to the same port. */
  static plain(port: number): Promise<TlsQmp> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(new TlsQmp(s)));
      s.once("error", reject);
    });
  }

  send(obj: unknown): void {
    this.socket.write(typeof obj === "string" ? obj : JSON.stringify(obj));
  }

  /** The next JSON line, or null once the server closed the connection. */
  async next(): Promise<Record<string, unknown> | null> {
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return JSON.parse(l) as Record<string, unknown>;
      if (this.closed) return null;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Greeting, then negotiation with oob. */
  async negotiate(): Promise<Record<string, unknown>> {
    const greeting = await this.next();
    if (greeting === null) throw new Error("closed before the greeting");
    this.send({ execute: "qmp_capabilities", arguments: { enable: ["oob"] } });
    await this.next();
    return greeting;
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<Record<string, unknown> | null> {
    this.send(args === undefined ? { execute: command } : { execute: command, arguments: args });
    for (;;) {
      const m = await this.next();
      if (m === null || !("event" in m)) return m;
    }
  }

  /** Resolves once the server has closed the connection (collecting anything it wrote). */
  async closedByServer(): Promise<string[]> {
    const got: string[] = [];
    for (;;) {
      if (this.lines.length > 0) got.push(...this.lines.splice(0));
      if (this.closed) return got;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
