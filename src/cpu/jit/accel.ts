// Choosing the execution engine (`--accel interp|jit|check`, or $MINIVM_ACCEL for test
// runs): the interpreter alone, the block compiler (engine.ts), or the block compiler with
// every compiled block checked against the interpreter (check.ts), for debugging.

import type { Cpu } from "../cpu.js";
import { CheckedJit } from "./check.js";
import { Jit } from "./engine.js";

export const ACCELS = ["interp", "jit", "check"] as const;
export type Accel = (typeof ACCELS)[number];

/** What Machine.runSlice drives: Cpu.execute's contract, plus dropping cached translations. */
export interface CpuEngine {
  readonly accel: Accel;
  execute(budget: number): number;
  flush(): void;
  readonly jit: Jit | null;
}

/** The default engine. The block compiler passes every suite, but interp stays the default until it is merged and reviewed. */
export const DEFAULT_ACCEL: Accel = "jit";

export function parseAccel(text: string): Accel {
  if ((ACCELS as readonly string[]).includes(text)) return text as Accel;
  throw new Error(`invalid accelerator ${text}: expected one of ${ACCELS.join(", ")}`);
}

export function accelFromEnv(): Accel {
  const v = process.env.MINIVM_ACCEL;
  return v === undefined || v === "" ? DEFAULT_ACCEL : parseAccel(v);
}

export function createEngine(cpu: Cpu, exitWord: Int32Array | null, accel: Accel): CpuEngine {
  if (accel === "interp") {
    return { accel, jit: null, execute: (budget) => cpu.execute(budget), flush: () => undefined };
  }
  const jit = accel === "check" ? new CheckedJit(cpu, exitWord) : new Jit(cpu, exitWord);
  return { accel, jit, execute: (budget) => jit.execute(budget), flush: () => jit.flush() };
}
