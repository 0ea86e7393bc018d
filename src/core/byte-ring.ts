// A single-producer, single-consumer byte ring in a SharedArrayBuffer: the serial console's
// path between the core thread and the main thread (DESIGN.md §2). Lock-free: the producer
// owns the write counter, the consumer the read counter; each publishes with Atomics.store
// and the other reads with Atomics.load, so bytes are in the buffer before the counter says
// so. Counters are free-running 32-bit totals (used = write - read, mod 2^32), so a full ring
// and an empty one are told apart without a wasted slot.
//
// Layout (Int32 words, then data from byte 64 so data starts on its own cache line):
//   0 WRITE     bytes ever written (producer)      the consumer sleeps on this word
//   1 READ      bytes ever read (consumer)         a producer waiting for room sleeps on this
//   2 CAPACITY  data bytes, a power of two
//   3 CLOSED    nonzero: the consumer is gone, a producer stops waiting and drops bytes
//   4 WAITS     times the producer found the ring full (statistics)
//   5..15       reserved

const WRITE = 0;
const READ = 1;
const CAPACITY = 2;
const CLOSED = 3;
const WAITS = 4;
const HEADER_BYTES = 64;

export class ByteRing {
  private readonly words: Int32Array;
  private readonly data: Uint8Array;
  readonly capacity: number;

  /** Bytes of a SharedArrayBuffer for a ring of `capacity` data bytes. */
  static bytesFor(capacity: number): number {
    return HEADER_BYTES + capacity;
  }

  /** A fresh, empty ring. `capacity` must be a power of two, at least 16. */
  static create(capacity: number): SharedArrayBuffer {
    if (!Number.isInteger(capacity) || capacity < 16 || capacity > 1 << 30 || (capacity & (capacity - 1)) !== 0) {
      throw new Error(`ring capacity ${capacity} must be a power of two between 16 and 2^30`);
    }
    const buffer = new SharedArrayBuffer(ByteRing.bytesFor(capacity));
    new Int32Array(buffer, 0, HEADER_BYTES / 4)[CAPACITY] = capacity;
    return buffer;
  }

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.capacity = Atomics.load(this.words, CAPACITY);
    if (this.capacity < 16 || (this.capacity & (this.capacity - 1)) !== 0 || buffer.byteLength < ByteRing.bytesFor(this.capacity)) {
      throw new Error(`not a byte ring: capacity word ${this.capacity}, buffer of ${buffer.byteLength} bytes`);
    }
    this.data = new Uint8Array(buffer, HEADER_BYTES, this.capacity);
  }

  /** Bytes the consumer can read now. */
  available(): number {
    return (Atomics.load(this.words, WRITE) - Atomics.load(this.words, READ)) >>> 0;
  }

  /** Bytes the producer can write now. */
  free(): number {
    return this.capacity - this.available();
  }

  get closed(): boolean {
    return Atomics.load(this.words, CLOSED) !== 0;
  }

  get producerWaits(): number {
    return Atomics.load(this.words, WAITS);
  }

  /** Producer: copy as much of `src` as fits; returns how many bytes went in. */
  write(src: Uint8Array): number {
    const w = Atomics.load(this.words, WRITE);
    const used = (w - Atomics.load(this.words, READ)) >>> 0;
    const n = Math.min(src.length, this.capacity - used);
    if (n === 0) return 0;
    const at = w & (this.capacity - 1);
    const first = Math.min(n, this.capacity - at);
    this.data.set(src.subarray(0, first), at);
    if (n > first) this.data.set(src.subarray(first, n), 0);
    Atomics.store(this.words, WRITE, (w + n) | 0);
    return n;
  }

  /** Producer: wake a consumer sleeping in waitForData (batched by the caller). */
  notifyReader(): void {
    Atomics.notify(this.words, WRITE);
  }

  /**
   * Producer on a worker thread: write all of `src`, sleeping while the ring is full. Wakes
   * the reader before it sleeps, so a reader that is itself waiting for data cannot leave both
   * asleep. Bytes are dropped only once the consumer has closed the ring.
   */
  writeAll(src: Uint8Array): void {
    let rest = src;
    for (;;) {
      rest = rest.subarray(this.write(rest));
      if (rest.length === 0 || this.closed) return;
      const r = Atomics.load(this.words, READ);
      if (((Atomics.load(this.words, WRITE) - r) >>> 0) < this.capacity) continue;
      Atomics.add(this.words, WAITS, 1);
      this.notifyReader();
      // The timeout only bounds how long a closed-without-notify consumer can stall us.
      Atomics.wait(this.words, READ, r, 1000);
    }
  }

  /** Consumer: take every byte available (null when there is none) and wake a waiting producer. */
  read(): Uint8Array | null {
    const r = Atomics.load(this.words, READ);
    const n = (Atomics.load(this.words, WRITE) - r) >>> 0;
    if (n === 0) return null;
    const out = new Uint8Array(n);
    const at = r & (this.capacity - 1);
    const first = Math.min(n, this.capacity - at);
    out.set(this.data.subarray(at, at + first));
    if (n > first) out.set(this.data.subarray(0, n - first), first);
    Atomics.store(this.words, READ, (r + n) | 0);
    Atomics.notify(this.words, READ);
    return out;
  }

  /**
   * Consumer: resolve once bytes are (or already were) available or the ring was woken, without
   * blocking the calling thread's event loop (Atomics.waitAsync on the write counter).
   */
  waitForData(): Promise<void> {
    const r = Atomics.load(this.words, READ);
    const w = Atomics.waitAsync(this.words, WRITE, r);
    return w.async ? w.value.then(() => undefined) : Promise.resolve();
  }

  /** Producer on an event-loop thread: resolve once there is room (or the ring was woken). */
  waitForSpace(): Promise<void> {
    const r = Atomics.load(this.words, READ);
    if (((Atomics.load(this.words, WRITE) - r) >>> 0) < this.capacity) return Promise.resolve();
    const w = Atomics.waitAsync(this.words, READ, r);
    return w.async ? w.value.then(() => undefined) : Promise.resolve();
  }

  /** Consumer: stop for good. A producer waiting for room drops the rest instead. */
  close(): void {
    Atomics.store(this.words, CLOSED, 1);
    Atomics.notify(this.words, READ);
    Atomics.notify(this.words, WRITE);
  }
}

/**
 * Read a ring on an event-loop thread until stopped: `onBytes` gets each batch as it arrives.
 * stop() drains what is left first, so nothing written before it is lost.
 */
export function pumpRing(ring: ByteRing, onBytes: (bytes: Uint8Array) => void): { drain(): void; stop(): void } {
  let stopped = false;
  const drain = (): void => {
    for (let b = ring.read(); b !== null; b = ring.read()) onBytes(b);
  };
  const loop = (): void => {
    if (stopped) return;
    drain();
    void ring.waitForData().then(loop);
  };
  loop();
  return {
    drain,
    stop: () => {
      if (stopped) return;
      drain();
      stopped = true;
      // Settle our own pending waitAsync so it does not hold the event loop open.
      ring.notifyReader();
    },
  };
}
