// Where a file's data and holes are: lseek(2) with SEEK_DATA and SEEK_HOLE, as QEMU's
// file-posix find_allocation() asks. Node's fs has no lseek with a whence, so the call goes
// through fs-ext-extra-prebuilt, a small addon that passes whence to lseek unchanged (it ships
// prebuilt binaries, so nothing is compiled at install).

import { createRequire } from "node:module";

/** Linux's values (<unistd.h>, since 3.1). */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

interface FsExt {
  seek(fd: number, offset: number, whence: number, cb: (err: NodeJS.ErrnoException | null, pos: number) => void): void;
}

let addon: FsExt | null | undefined;
function fsExt(): FsExt | null {
  if (addon !== undefined) return addon;
  try {
    // Loaded on first use: a process that never maps a raw file never loads the addon.
    addon = process.platform === "linux" ? (createRequire(import.meta.url)("fs-ext-extra-prebuilt") as FsExt) : null;
  } catch {
    addon = null;
  }
  return addon;
}

function seek(x: FsExt, fd: number, offset: number, whence: number): Promise<number | "ENXIO"> {
  return new Promise((resolve, reject) =>
    x.seek(fd, offset, whence, (err, pos) => {
      if (err === null) resolve(pos);
      else if (err.code === "ENXIO") resolve("ENXIO");
      else reject(err);
    }),
  );
}

/** One run of data or hole starting at an offset (find_allocation's answer). */
export interface Allocation {
  data: boolean;
  /** Bytes from the offset asked about; at least 1. */
  length: number;
}

/**
 * Whether the bytes at `offset` of the file `fd` (of `size` bytes) are data or a hole, and
 * for how long, at most `max` bytes. Null when this system cannot tell: callers then treat
 * everything as data, as QEMU does when SEEK_DATA is not supported.
 */
export async function findAllocation(fd: number, offset: number, max: number, size: number): Promise<Allocation | null> {
  const x = fsExt();
  if (x === null || offset >= size) return null;
  const limit = Math.min(max, size - offset);
  try {
    const data = await seek(x, fd, offset, SEEK_DATA);
    // No data from here to the end of the file: all hole.
    if (data === "ENXIO") return { data: false, length: limit };
    if (data > offset) return { data: false, length: Math.min(limit, data - offset) };
    const hole = await seek(x, fd, offset, SEEK_HOLE);
    // A file that shrank meanwhile: let the caller see data, which is always safe.
    if (hole === "ENXIO" || hole <= offset) return { data: true, length: limit };
    return { data: true, length: Math.min(limit, hole - offset) };
  } catch {
    return null;
  }
}
