// The M extension's high-half multiplies and divisions (unprivileged spec, chapter 7),
// in 32-bit integer arithmetic only: no BigInt, no allocation, small enough for V8 to inline
// into the interpreter loop.

/** Upper 32 bits of the unsigned 64-bit product of two 32-bit values. */
export function mulhu(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (p11 + Math.floor(p01 / 65536) + Math.floor(p10 / 65536) + Math.floor(mid / 65536)) | 0;
}

/** Upper 32 bits of signed × signed. */
export function mulh(a: number, b: number): number {
  let hi = mulhu(a, b);
  if (a < 0) hi = (hi - b) | 0;
  if (b < 0) hi = (hi - a) | 0;
  return hi;
}

/** Upper 32 bits of signed `a` × unsigned `b`. */
export function mulhsu(a: number, b: number): number {
  let hi = mulhu(a, b);
  if (a < 0) hi = (hi - b) | 0;
  return hi;
}

// Division by zero and overflow never trap in RISC-V (spec table 7.1).
export function div(a: number, b: number): number {
  if (b === 0) return -1;
  if (a === -0x80000000 && b === -1) return a;
  return (a / b) | 0;
}

export function divu(a: number, b: number): number {
  const ua = a >>> 0;
  const ub = b >>> 0;
  if (ub === 0) return -1;
  return Math.floor(ua / ub) | 0;
}

export function rem(a: number, b: number): number {
  if (b === 0) return a;
  if (a === -0x80000000 && b === -1) return 0;
  return a % b | 0;
}

export function remu(a: number, b: number): number {
  const ua = a >>> 0;
  const ub = b >>> 0;
  if (ub === 0) return a;
  return ua % ub | 0;
}
