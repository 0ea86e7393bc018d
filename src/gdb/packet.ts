// GDB remote serial protocol framing (gdb.texinfo "Remote Protocol" > "Overview"): packets
// are `$data#cs` with a mod-256 checksum, acknowledged `+` or `-`; `}` escapes the next byte
// (XOR 0x20); `c*N` repeats c N-29 more times; a bare 0x03 outside a packet is an interrupt.
// QEMU's gdbstub reads the same way (gdb_read_byte): a bad checksum gets `-`, no no-ack mode.

/** What the reader found in the byte stream. */
export type Incoming = { kind: "packet"; data: string } | { kind: "interrupt" } | { kind: "nack" };

/** QEMU's MAX_PACKET_LENGTH: a longer packet is dropped. */
const MAX_PACKET = 4096;

export class PacketReader {
  private state: "idle" | "data" | "cs1" | "cs2" = "idle";
  private buf: number[] = [];
  private sum = 0;
  private cs = 0;

  /** Feed received bytes; returns what they completed, and the acks to send back. */
  feed(bytes: Uint8Array): { items: Incoming[]; acks: string } {
    const items: Incoming[] = [];
    let acks = "";
    for (const b of bytes) {
      switch (this.state) {
        case "idle":
          if (b === 0x24) {
            this.state = "data";
            this.buf = [];
            this.sum = 0;
          } else if (b === 0x03) {
            items.push({ kind: "interrupt" });
          } else if (b === 0x2d) {
            items.push({ kind: "nack" });
          }
          // `+` and anything else between packets is ignored.
          break;
        case "data":
          if (b === 0x23) {
            this.state = "cs1";
          } else {
            this.sum = (this.sum + b) & 0xff;
            if (this.buf.length < MAX_PACKET) this.buf.push(b);
          }
          break;
        case "cs1":
          this.cs = hexDigit(b) << 4;
          this.state = "cs2";
          break;
        case "cs2": {
          this.cs |= hexDigit(b);
          this.state = "idle";
          if (this.cs !== this.sum || this.buf.length >= MAX_PACKET) {
            acks += "-";
            break;
          }
          acks += "+";
          items.push({ kind: "packet", data: decodeBody(this.buf) });
          break;
        }
      }
    }
    return { items, acks };
  }
}

function hexDigit(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return 0x100; // never matches a checksum
}

/** Undo escapes and run-length encoding; the result is a latin1 string (binary-safe). */
function decodeBody(raw: number[]): string {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === 0x7d && i + 1 < raw.length) {
      out.push(raw[++i] ^ 0x20);
    } else if (b === 0x2a && out.length > 0 && i + 1 < raw.length) {
      const n = raw[++i] - 29;
      const last = out[out.length - 1];
      for (let k = 0; k < n; k++) out.push(last);
    } else {
      out.push(b);
    }
  }
  return Buffer.from(out).toString("latin1");
}

/** Frame a reply: `$data#cs`, escaping the bytes the protocol reserves (for binary replies). */
export function framePacket(data: string, binary = false): Buffer {
  const body: number[] = [];
  for (const b of Buffer.from(data, "latin1")) {
    if (binary && (b === 0x23 || b === 0x24 || b === 0x2a || b === 0x7d)) body.push(0x7d, b ^ 0x20);
    else body.push(b);
  }
  let sum = 0;
  for (const b of body) sum = (sum + b) & 0xff;
  return Buffer.concat([Buffer.from("$"), Buffer.from(body), Buffer.from("#" + sum.toString(16).padStart(2, "0"))]);
}

/** Bytes as lower-case hex, as the protocol carries memory and registers. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** A 32-bit register in target (little-endian) byte order as 8 hex digits. */
export function regHex(v: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b.toString("hex");
}

/** 8 hex digits of a little-endian 32-bit register back to a number. */
export function parseRegHex(hex: string): number {
  const b = Buffer.from(hex.padEnd(8, "0").slice(0, 8), "hex");
  return b.readUInt32LE(0) | 0;
}
