// xorshift32: reproducible "random" numbers for fuzzers and random tests, so a failure reproduces.

/** Raw 32-bit outputs (unsigned). */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Numbers in [0, 1). */
export function rng(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 0x100000000;
}
