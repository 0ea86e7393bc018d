// A QMP client over TLS for tests: Node's own TLS client with the test PKI, line by line.
import * as net from "node:net";
import * as tls from "node:tls";
import { readFileSync } from "node:fs";
import { SocketLines } from "../helpers/socket-lines.js";

export class TlsQmp {
  private readonly in: SocketLines;

  private constructor(readonly socket: net.Socket) {
    this.in = new SocketLines(socket);
    socket.on("error", () => undefined);
  }

  get closed(): boolean {
    return this.in.closed;
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
    const l = await this.in.next();
    return l === null ? null : (JSON.parse(l) as Record<string, unknown>);
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
      if (this.in.lines.length > 0) got.push(...this.in.lines.splice(0));
      if (this.in.closed) return got;
      await this.in.wait();
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
