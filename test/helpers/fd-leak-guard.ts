// Fails a test file that left a FileHandle for the garbage collector to close: Node warns
// "Closing file descriptor N on garbage collection" and will make it an error. Loaded by
// vitest.config.ts for every test file; the workers run with --expose-gc so that a handle
// dropped anywhere in the file is collected, and reported, before the file ends.
import { afterAll } from "vitest";

const GC_CLOSE = /Closing file descriptor \d+ on garbage collection/;

/** Warnings Node emitted about FileHandles closed by the garbage collector, in this process. */
export const fdLeaks: string[] = [];

/** The guard's own listener (a test that leaks on purpose detaches every other one). */
export function onWarning(w: Error): void {
  if (GC_CLOSE.test(w.message)) fdLeaks.push(w.message);
}
process.on("warning", onWarning);

/** Collects garbage and lets the warnings it schedules be emitted. */
export async function collectAndDrain(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return;
  // A collected FileHandle closes its descriptor on the thread pool and warns when that close
  // completes, a few event-loop turns later; a handle can also need a second collection.
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise<void>((r) => setTimeout(r, 0));
    await new Promise<void>((r) => setImmediate(r));
  }
}

afterAll(async () => {
  await collectAndDrain();
  if (fdLeaks.length > 0) {
    throw new Error(`a FileHandle was left for the garbage collector to close (${fdLeaks.join("; ")}): close it on every path`);
  }
});
