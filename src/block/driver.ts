// The interface every image format implements (QEMU's BlockDriver, reduced to what minivm
// needs). Offsets and lengths are bytes, JS numbers (exact up to 2^53). Every operation
// returns a Promise: the bytes move through the I/O pool, never on the calling thread.

import type { ImageLock } from "./lock.js";

/** One extent of `qemu-img map` / bdrv_block_status. */
export interface BlockExtent {
  start: number;
  length: number;
  /** How many images down the backing chain the data comes from (0 = this image). */
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  compressed: boolean;
  /** Host offset in the file that holds the data, when it is stored uncompressed. */
  offset?: number;
}

/** Format-specific facts for `info` (ImageInfoSpecificQCow2 in qapi/block-core.json). */
export interface Qcow2Specific {
  compat: "0.10" | "1.1";
  "compression-type": "zlib" | "zstd";
  "lazy-refcounts"?: boolean;
  "refcount-bits": number;
  corrupt?: boolean;
  "extended-l2"?: boolean;
}

export interface BlockDriver {
  readonly format: "raw" | "qcow2";
  readonly filename: string;
  readonly readOnly: boolean;
  /** Virtual disk size in bytes. */
  readonly size: number;
  readonly clusterSize: number | undefined;
  /** The image below this one, or null (none, or `backing: null`). */
  readonly backing: BlockDriver | null;
  /** The name stored in the image header, as written (qcow2 only). */
  readonly backingFilename: string | undefined;
  readonly backingFormat: string | undefined;
  /** Reads [offset, offset+length); the range must lie inside the disk. */
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes the range read as zeros (v3 zero clusters where possible). */
  writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void>;
  /** The guest no longer needs the range; contents afterwards are unspecified (zeros here). */
  discard(offset: number, length: number): Promise<void>;
  /** Everything written so far reaches stable storage (fdatasync). */
  flush(): Promise<void>;
  /** Status of the extent starting at `offset`, at most `length` bytes long. */
  blockStatus(offset: number, length: number): Promise<BlockExtent>;
  /** Bytes the file occupies on disk (st_blocks * 512), as qemu-img's actual-size. */
  actualSize(): Promise<number>;
  dirty(): boolean;
  /** QEMU's image locks on this image's file; null with locking=off (lock.ts). */
  imageLock?: ImageLock | null;
  formatSpecific(): Qcow2Specific | undefined;
  close(): Promise<void>;
}

/** The error every driver throws for a request outside the disk. */
export function checkRange(drv: { size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > drv.size) {
    throw new RangeError(`request [${offset}, +${length}) outside the ${drv.size}-byte disk`);
  }
}
