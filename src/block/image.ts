// Opening an image file by name: format probing (as QEMU's bdrv_probe: the qcow2 magic, else
// raw), then the backing chain, read-only, to any depth, with loops refused. A qcow2 image left
// dirty by lazy refcounts is repaired on a read-write open, as QEMU does.

import { open, realpath } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import type { BlockDriver } from "./driver.js";
import type { IoPool } from "./io-pool.js";
import { ImageOpenError, QCOW_MAGIC, u32 } from "./qcow2-format.js";
import { Qcow2Driver } from "./qcow2.js";
import { RawDriver } from "./raw.js";
import { checkQcow2 } from "./qcow2-check.js";

export interface OpenOptions {
  pool: IoPool;
  /** "raw" | "qcow2"; probed when absent. */
  format?: string;
  readOnly?: boolean;
  /** null: no backing at all (QMP `backing: null`); a string: use this file instead of the header's. */
  backing?: string | null;
  backingFormat?: string;
  /** Opening for `check`: no automatic repair, a corrupt image opens. */
  forCheck?: boolean;
}

/**
 * QEMU's path_combine: a relative backing name is relative to the overlay's directory, and
 * stays relative to the current directory when the overlay's name was (as qemu-img prints it).
 */
export function backingPath(overlay: string, name: string): string {
  if (isAbsolute(name) || /^[a-z]+:/.test(name)) return name;
  const dir = dirname(overlay);
  return dir === "." ? name : join(dir, name);
}

export async function probeFormat(filename: string, pool: IoPool): Promise<"raw" | "qcow2"> {
  const fh = await open(filename, "r");
  try {
    const b = await pool.pread(fh.fd, 0, 4);
    return u32(b, 0) === QCOW_MAGIC ? "qcow2" : "raw";
  } finally {
    await fh.close();
  }
}

export async function openImage(filename: string, opts: OpenOptions, seen: Set<string> = new Set()): Promise<BlockDriver> {
  const readOnly = opts.readOnly ?? false;
  let real: string;
  try {
    real = await realpath(filename);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ImageOpenError(`Could not open '${filename}': ${err.code === "ENOENT" ? "No such file or directory" : err.message}`);
  }
  if (seen.has(real)) throw new ImageOpenError(`Backing file '${filename}' loops back into its own chain`);
  seen.add(real);
  const format = opts.format ?? (await probeFormat(filename, opts.pool));
  if (format !== "raw" && format !== "qcow2") throw new ImageOpenError(`Unknown driver '${format}'`);
  const fh = await open(filename, readOnly ? "r" : "r+").catch((e: NodeJS.ErrnoException) => {
    throw new ImageOpenError(`Could not open '${filename}': ${e.code === "EACCES" ? "Permission denied" : e.message}`);
  });
  let d: Qcow2Driver | null = null;
  try {
    if (format === "raw") return await RawDriver.open(filename, fh, opts.pool, readOnly);
    d = await Qcow2Driver.open(filename, fh, opts.pool, { readOnly, forCheck: opts.forCheck });
    const name = opts.backing === undefined ? d.backingFilename : opts.backing;
    if (name) {
      const path = opts.backing === undefined ? backingPath(filename, name) : name;
      try {
        d.backing = await openImage(path, { pool: opts.pool, readOnly: true, format: opts.backing === undefined ? d.backingFormat : opts.backingFormat }, seen);
      } catch (e) {
        if (e instanceof ImageOpenError && /loops back/.test(e.message)) throw e;
        throw new ImageOpenError(`Could not open backing file: ${(e as Error).message}`);
      }
    }
    if (!readOnly && !opts.forCheck && d.dirty()) {
      const r = await checkQcow2(d, { repair: "all" });
      if (r.checkErrors || r.corruptions - r.corruptionsFixed > 0) {
        // The repair may have queued metadata: close() settles it and releases the chain.
        const failed = d;
        d = null;
        await failed.close().catch(() => undefined);
        throw new ImageOpenError("Could not repair dirty image: Input/output error");
      }
    }
    return d;
  } catch (e) {
    // Nothing half-opened survives a failed open: this image's file and any backing chain
    // already opened below it are closed here (the image is not written: it failed to open).
    await d?.backing?.close().catch(() => undefined);
    await fh.close().catch(() => undefined);
    throw e;
  }
}
