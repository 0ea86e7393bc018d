// Big-endian byte writer and reader for QEMU's migration encoding (migration/qemu-file.c:
// qemu_put_be16/be32/be64 and their get_ twins). The VMState interpreter uses them for
// section bodies; the migration stream reuses them for headers and RAM records.

/** Raised when a read runs past the end of the input: the stream was truncated. */
export class TruncatedInput extends Error {}

/** Appends bytes to a buffer that grows as needed. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private len = 0;

  get length(): number {
    return this.len;
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v & 0xff;
  }

  be16(v: number): void {
    this.room(2);
    this.view.setUint16(this.len, v & 0xffff);
    this.len += 2;
  }

  be32(v: number): void {
    this.room(4);
    this.view.setUint32(this.len, v >>> 0);
    this.len += 4;
  }

  /** 64 bits, two's complement for negative values (bigint: exact over the whole range). */
  be64(v: bigint): void {
    this.room(8);
    this.view.setBigUint64(this.len, BigInt.asUintN(64, v));
    this.len += 8;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** A copy of everything written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads from a byte array; every read checks that the bytes are there. */
export class ByteReader {
  private readonly view: DataView;
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new TruncatedInput(`input ends after ${this.buf.length} bytes, ${n} more needed at offset ${this.pos}`);
    }
  }

  /** The byte `ahead` bytes from here without consuming it, or -1 past the end (qemu_peek_byte). */
  peek(ahead = 0): number {
    const at = this.pos + ahead;
    return at < this.buf.length ? this.buf[at] : -1;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  be16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  be32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** Unsigned 64-bit value. */
  be64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  /** A copy of the next `n` bytes. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}
