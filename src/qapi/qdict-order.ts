// QEMU prints a JSON object in the order its QDict iterates: by bucket of a hash of the key
// (qobject/qdict.c: tdb_hash modulo 512 buckets), and within a bucket the key inserted last
// first. Reproducing it makes minivm's replies byte-identical to QEMU's, which keeps
// differential tests simple and clients that (wrongly) depend on order happy. The visitor
// runtime reports leftover members in this order too, so it sits below the wire layer.

const QDICT_BUCKET_MAX = 512;
const bucketCache = new Map<string, number>();

/** The QDict bucket QEMU puts `key` in. */
export function qdictBucket(key: string): number {
  const cached = bucketCache.get(key);
  if (cached !== undefined) return cached;
  // QEMU hashes the key's UTF-8 bytes.
  const bytes = Buffer.from(key, "utf8");
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    value = (value + ((bytes[i] ?? 0) << ((i * 5) % 24))) >>> 0;
  }
  const bucket = ((Math.imul(1103515243, value) + 12345) >>> 0) % QDICT_BUCKET_MAX;
  if (bucketCache.size < 4096) bucketCache.set(key, bucket);
  return bucket;
}

// Replies and requests repeat a handful of key lists; sorting each once is enough.
const orderCache = new Map<string, readonly string[]>();
const ORDER_CACHE_MAX = 1024;

/** Keys of an object in QEMU's iteration order, given their insertion order. */
export function qdictKeyOrder(keys: readonly string[]): readonly string[] {
  if (keys.length < 2) return keys;
  const sig = keys.join("\0");
  const cached = orderCache.get(sig);
  if (cached !== undefined) return cached;
  const indexed = keys.map((k, i) => ({ k, i, b: qdictBucket(k) }));
  indexed.sort((x, y) => x.b - y.b || y.i - x.i);
  const order = indexed.map((e) => e.k);
  if (orderCache.size < ORDER_CACHE_MAX) orderCache.set(sig, order);
  return order;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A deep copy of `value` whose objects list their keys in QEMU's order. */
export function inQdictOrder(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(inQdictOrder);
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const k of qdictKeyOrder(Object.keys(value))) out[k] = inQdictOrder(value[k]);
  return out;
}
