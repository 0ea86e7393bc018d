// A socket read line by line (CRLF or LF), for tests that talk a line protocol (QMP) directly.
import type { Socket } from "node:net";

export class SocketLines {
  private buf = "";
  readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  closed = false;

  constructor(socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        this.lines.push(this.buf.slice(0, i).replace(/\r$/, ""));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Resolves at the next line or close. */
  wait(): Promise<void> {
    return new Promise<void>((r) => (this.waiter = r));
  }

  /** The next line, or null once the socket closed with nothing left. */
  async next(): Promise<string | null> {
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return l;
      if (this.closed) return null;
      await this.wait();
    }
  }
}
