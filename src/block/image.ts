// Opening an image file by name: format probing (as QEMU's bdrv_probe: the qcow2 magic, else
// raw), then the backing chain, read-only, to any depth, with loops refused. A qcow2 image left
// dirty by lazy refcounts is repaired on a read-write open, as QEMU does. Every file opened
// takes QEMU's image locks for its role (lock.ts), unless `locking=off`.

import { open, realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import type { BlockDriver } from "./driver.js";
import type { IoPool } from "./io-pool.js";
import { ImageOpenError, QCOW_MAGIC, u32 } from "./qcow2-format.js";
import { Qcow2Driver } from "./qcow2.js";
import { RawDriver } from "./raw.js";
import { checkQcow2 } from "./qcow2-check.js";
import { ImageLock, hasOfdLocks, imagePerms, type LockingMode } from "./lock.js";

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
  /** The file node's `locking` option (file.locking=...); backing files always use auto. */
  locking?: LockingMode;
  /** qemu-img -U: take no permission that others could be refused by, and share all. */
  forceShare?: boolean;
  /** A migration destination: open without locking anything until activateImage. */
  inactive?: boolean;
  /** A lone `file` node (blockdev-add driver=file): QEMU locks nothing for it. */
  protocolOnly?: boolean;
  /** qemu-img info's BDRV_O_NO_IO: only metadata is read. */
  noIo?: boolean;
  /** Where qcow2_signal_corruption's message goes (QEMU prints it on stderr); default stderr. */
  onCorruption?: (message: string) => void;
  /** Opened as some image's backing file (set by openImage for the chain below the top). */
  asBacking?: boolean;
}

/** Whether `mode` means locking on this host; `on` without OFD locks is refused. */
function lockingEnabled(mode: LockingMode): boolean {
  if (mode === "off") return false;
  if (mode === "on" && !hasOfdLocks()) throw new ImageOpenError("locking=on needs Linux OFD locks, which this host does not have");
  return mode === "on" || hasOfdLocks();
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
    const b = await pool.pread(fh.fd, 0, 8);
    // qcow2_probe wants version 2 or later; version 1 is QEMU's old qcow driver (which minivm
    // refuses by name, as a qcow2 of an unsupported version); anything else is raw data.
    return u32(b, 0) === QCOW_MAGIC && u32(b, 4) >= 1 ? "qcow2" : "raw";
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
  if ((await stat(real)).isDirectory()) throw new ImageOpenError(`'file' driver requires '${filename}' to be a regular file`);
  if (seen.has(real)) throw new ImageOpenError(`Backing file '${filename}' loops back into its own chain`);
  seen.add(real);
  const format = opts.format ?? (await probeFormat(filename, opts.pool));
  if (format !== "raw" && format !== "qcow2") throw new ImageOpenError(`Unknown driver '${format}'`);
  const fh = await open(filename, readOnly ? "r" : "r+").catch((e: NodeJS.ErrnoException) => {
    throw new ImageOpenError(`Could not open '${filename}': ${e.code === "EACCES" ? "Permission denied" : e.message}`);
  });
  let d: Qcow2Driver | null = null;
  try {
    let lock: ImageLock | null = null;
    if (lockingEnabled(opts.locking ?? "auto")) {
      // QEMU locks at the first permission update, right after the open; so does minivm,
      // before reading a byte, so that a refused open has read nothing.
      const perms = imagePerms({ format, readOnly, backing: opts.asBacking, forceShare: opts.forceShare, protocolOnly: opts.protocolOnly, noIo: opts.noIo });
      lock = new ImageLock(fh.fd, filename, perms, { inactive: opts.inactive });
      lock.acquire();
    }
    if (format === "raw") {
      const r = await RawDriver.open(filename, fh, opts.pool, readOnly);
      r.imageLock = lock;
      return r;
    }
    d = await Qcow2Driver.open(filename, fh, opts.pool, { readOnly, forCheck: opts.forCheck, onCorruption: opts.onCorruption });
    d.imageLock = lock;
    const name = opts.backing === undefined ? d.backingFilename : opts.backing;
    if (name) {
      const path = opts.backing === undefined ? backingPath(filename, name) : name;
      try {
        d.backing = await openImage(
          path,
          { pool: opts.pool, readOnly: true, format: opts.backing === undefined ? d.backingFormat : opts.backingFormat, asBacking: true, forceShare: opts.forceShare, inactive: opts.inactive },
          seen,
        );
      } catch (e) {
        if (e instanceof ImageOpenError && /loops back/.test(e.message)) throw e;
        throw new ImageOpenError(`Could not open backing file: ${(e as Error).message}`);
      }
    }
    // An inactive image belongs to someone else still: its repair waits for activateImage.
    if (!readOnly && !opts.forCheck && !opts.inactive && d.dirty()) {
      const failed = d;
      d = null;
      await repairDirty(failed);
      d = failed;
    }
    if (opts.inactive) d.markInactive();
    return d;
  } catch (e) {
    // Nothing half-opened survives a failed open: this image's file and any backing chain
    // already opened below it are closed here (the image is not written: it failed to open).
    await d?.backing?.close().catch(() => undefined);
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/** A dirty qcow2 (lazy refcounts) is repaired before use; a failed repair closes the chain. */
async function repairDirty(d: Qcow2Driver): Promise<void> {
  const r = await checkQcow2(d, { repair: "all" });
  if (r.checkErrors || r.corruptions - r.corruptionsFixed > 0) {
    // The repair may have queued metadata: close() settles it and releases the chain.
    await d.close().catch(() => undefined);
    throw new ImageOpenError("Could not repair dirty image: Input/output error");
  }
}

/** Every driver of a chain, top first. */
function chain(drv: BlockDriver): BlockDriver[] {
  const out: BlockDriver[] = [];
  for (let d: BlockDriver | null = drv; d; d = d.backing) out.push(d);
  return out;
}

/**
 * bdrv_inactivate_recurse for one chain: written data and metadata reach the disk (a qcow2
 * is marked clean), then every lock is released, so another process may take the image.
 */
export async function inactivateImage(drv: BlockDriver): Promise<void> {
  for (const d of chain(drv)) {
    if (d instanceof Qcow2Driver) await d.inactivate();
    else await d.flush();
    d.imageLock?.inactivate();
  }
}

/**
 * bdrv_activate for one chain, bottom first: take the locks (refused in QEMU's words while
 * someone else still holds the image), then forget every cached piece of metadata, which the
 * previous owner may have changed (qcow2_co_invalidate_cache), and repair a dirty image.
 */
export async function activateImage(drv: BlockDriver): Promise<void> {
  const all = chain(drv).reverse();
  const taken: BlockDriver[] = [];
  try {
    for (const d of all) {
      d.imageLock?.activate();
      taken.push(d);
    }
  } catch (e) {
    for (const d of taken) d.imageLock?.inactivate();
    throw e;
  }
  for (const d of all) {
    if (!(d instanceof Qcow2Driver)) continue;
    await d.reload();
    if (!d.readOnly && d.dirty()) await repairDirty(d);
  }
}
