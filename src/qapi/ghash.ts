// The iteration order of a GLib GHashTable of strings (glib/ghash.c, GLib 2.74
// as in Debian 12). QEMU's input visitor keeps a struct's not-yet-visited keys
// in one and reports the first it iterates to as "Parameter '...' is
// unexpected", so with several stray keys the one QEMU names depends on this
// order. Open addressing with quadratic probing, index = hash * 11 mod a prime,
// tombstones on removal, and an in-place rehash when the load gets too high
// or too low.

const MIN_SHIFT = 3;
const UNUSED = 0;
const TOMBSTONE = 1;
const PRIME_MOD = [
  1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071, 262139, 524287,
  1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689, 268435399, 536870909, 1073741789,
  2147483647,
];

/** g_str_hash(): djb2 over the UTF-8 bytes read as signed chars. */
export function gStrHash(key: string): number {
  let h = 5381;
  for (const b of Buffer.from(key, "utf8")) {
    const c = b >= 128 ? b - 256 : b;
    h = (Math.imul(h, 33) + c) >>> 0;
  }
  return h;
}

export class GHashTableModel {
  private size = 0;
  private mod = 0;
  private mask = 0;
  private nnodes = 0;
  private noccupied = 0;
  private hashes: number[] = [];
  private keys: (string | null)[] = [];

  constructor() {
    this.setShift(MIN_SHIFT);
    this.hashes = new Array<number>(this.size).fill(UNUSED);
    this.keys = new Array<string | null>(this.size).fill(null);
  }

  private setShift(shift: number): void {
    this.size = 1 << shift;
    this.mod = PRIME_MOD[shift]!;
    this.mask = this.size - 1;
  }

  private hashToIndex(hash: number): number {
    return (Math.imul(hash, 11) >>> 0) % this.mod;
  }

  private lookupNode(key: string): { index: number; hash: number } {
    let hash = gStrHash(key);
    if (hash < 2) hash = 2;
    let index = this.hashToIndex(hash);
    let step = 0;
    let firstTombstone = -1;
    while (this.hashes[index] !== UNUSED) {
      const h = this.hashes[index]!;
      if (h === hash && this.keys[index] === key) return { index, hash };
      if (h === TOMBSTONE && firstTombstone < 0) firstTombstone = index;
      step++;
      index = (index + step) & this.mask;
    }
    return { index: firstTombstone >= 0 ? firstTombstone : index, hash };
  }

  insert(key: string): void {
    const { index, hash } = this.lookupNode(key);
    const old = this.hashes[index]!;
    if (old >= 2) return;
    this.hashes[index] = hash;
    this.keys[index] = key;
    this.nnodes++;
    if (old === UNUSED) {
      this.noccupied++;
      this.maybeResize();
    }
  }

  remove(key: string): void {
    const { index } = this.lookupNode(key);
    if (this.hashes[index]! < 2) return;
    this.hashes[index] = TOMBSTONE;
    this.keys[index] = null;
    this.nnodes--;
    this.maybeResize();
  }

  /** Keys in the order g_hash_table_iter_next() visits them. */
  keysInOrder(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.size; i++) if (this.hashes[i]! >= 2) out.push(this.keys[i]!);
    return out;
  }

  private maybeResize(): void {
    const noccupied = this.noccupied;
    const size = this.size;
    if ((size > this.nnodes * 4 && size > 1 << MIN_SHIFT) || size <= noccupied + Math.floor(noccupied / 16)) {
      this.resize();
    }
  }

  private resize(): void {
    const oldSize = this.size;
    // g_hash_table_set_shift_from_size(nnodes * 1.333): the bit length of the size.
    let n = Math.trunc(this.nnodes * 1.333);
    let shift = 0;
    while (n) {
      n >>= 1;
      shift++;
    }
    this.setShift(Math.max(shift, MIN_SHIFT));
    const span = Math.max(this.size, oldSize);
    while (this.hashes.length < span) {
      this.hashes.push(UNUSED);
      this.keys.push(null);
    }
    const relocated = new Array<boolean>(span).fill(false);
    // resize_map(): rehash in place, evicting whatever sits at the new slot.
    for (let i = 0; i < oldSize; i++) {
      let nodeHash = this.hashes[i]!;
      if (nodeHash < 2) {
        this.hashes[i] = UNUSED;
        continue;
      }
      if (relocated[i]) continue;
      this.hashes[i] = UNUSED;
      let key = this.keys[i]!;
      this.keys[i] = null;
      for (;;) {
        let idx = this.hashToIndex(nodeHash);
        let step = 0;
        while (relocated[idx]) {
          step++;
          idx = (idx + step) & this.mask;
        }
        relocated[idx] = true;
        const replacedHash = this.hashes[idx]!;
        const replacedKey = this.keys[idx]!;
        this.hashes[idx] = nodeHash;
        this.keys[idx] = key;
        if (replacedHash < 2) break;
        nodeHash = replacedHash;
        key = replacedKey;
      }
    }
    this.hashes.length = this.size;
    this.keys.length = this.size;
    this.noccupied = this.nnodes;
  }
}
