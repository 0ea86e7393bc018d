// The outside view of the teaching guest's `dirty` workload (firmware/guest/dirty.c), for
// tests that stop or migrate a VM and then read its RAM: the same check QEMU's migration
// test makes (its check_guests_ram), plus the page-address tag the guest adds.

/** Guest-physical address of the first dirtied page. */
export const DIRTY_BASE = 0x8100_0000;
export const PAGE = 4096;

export interface DirtyFault {
  page: number;
  address: number;
  why: string;
}

/**
 * `image` holds guest RAM from DIRTY_BASE on. Walking the pages upward, every byte-0 counter
 * must equal the first page's, except for one step down by 1 (mod 256) where the sweep
 * was stopped; bytes 4..7 must hold the page's own address. Returns the first fault or null.
 */
export function checkDirtyImage(image: Buffer, pages: number): DirtyFault | null {
  if (image.length < pages * PAGE) throw new Error(`image has ${image.length} bytes, ${pages} pages need ${pages * PAGE}`);
  let last = image[0] as number;
  let stepped = false;
  for (let p = 0; p < pages; p++) {
    const address = DIRTY_BASE + p * PAGE;
    const tag = image.readUInt32LE(p * PAGE + 4);
    if (tag !== address) return { page: p, address, why: `tag 0x${tag.toString(16)}` };
    const v = image[p * PAGE] as number;
    if (v === last) continue;
    if (!stepped && v === ((last - 1) & 0xff)) {
      stepped = true;
      last = v;
      continue;
    }
    return { page: p, address, why: `counter ${v} after ${last}` };
  }
  return null;
}
