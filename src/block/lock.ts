// Image locking as QEMU's file-posix driver does it (block/file-posix.c: raw_apply_lock_bytes,
// raw_check_lock_bytes, raw_handle_perm_lock), so that QEMU and minivm keep each other off an
// image they both open. Each block permission n is a byte: an opener holding permission n
// takes a shared OFD lock on byte 100+n; one that does NOT share permission n with others takes
// a shared lock on byte 200+n. Before it may go on, it checks that no one else locks 200+n for
// a permission it holds, nor 100+n for a permission it refuses to share. OFD locks belong to
// the open file description: they conflict between two fds of one process and die with the fd.

import { fstatSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ImageOpenError } from "./qcow2-format.js";

// include/block/block-common.h (QEMU 7.2): BLK_PERM_ALL is these four bits.
export const BLK_PERM_CONSISTENT_READ = 0x1;
export const BLK_PERM_WRITE = 0x2;
export const BLK_PERM_WRITE_UNCHANGED = 0x4;
export const BLK_PERM_RESIZE = 0x8;
export const BLK_PERM_ALL = 0xf;

/** file-posix.c: libvirt takes byte 0, QEMU starts higher. */
export const RAW_LOCK_PERM_BASE = 100;
export const RAW_LOCK_SHARED_BASE = 200;

/** bdrv_perm_names' words, by bit number. */
const PERM_NAMES = ["consistent read", "write", "write unchanged", "resize"];
const PERM_BITS = [0, 1, 2, 3];

/** The `locking` option of a file node (OnOffAuto). */
export type LockingMode = "on" | "off" | "auto";

export function parseLockingMode(v: string | undefined): LockingMode {
  if (v === undefined) return "auto";
  if (v === "on" || v === "off" || v === "auto") return v;
  throw new Error(`Parameter 'locking' does not accept value '${v}'`);
}

/** What one opener holds and what it lets others hold, as BLK_PERM_* masks. */
export interface Perms {
  perm: number;
  shared: number;
}

/** The image's place in the graph, which decides its permissions (see imagePerms). */
export interface ImageRole {
  format: "raw" | "qcow2";
  readOnly: boolean;
  /** Opened as a backing file (bdrv_default_perms_for_cow). */
  backing?: boolean;
  /** qemu-img -U / force-share=on: everything is shared. */
  forceShare?: boolean;
  /** A `file` node with no parent yet (blockdev-add driver=file): QEMU takes nothing for it. */
  protocolOnly?: boolean;
  /** BDRV_O_NO_IO (qemu-img info): a raw image is not read, so nothing is locked for it. */
  noIo?: boolean;
}

/**
 * The permissions QEMU 7.2 ends up locking on an image's file for each role, as read from
 * /proc/locks while qemu-system-riscv32 holds it with a virtio-blk device (resizable, so the
 * device itself shares RESIZE; a qcow2 node never shares WRITE or RESIZE of its file, and a
 * reader that needs consistent data never shares WRITE):
 *   raw rw: 100-101 / 201           qcow2 rw: 100,101,103 / 201,203
 *   raw ro: 100 / 201               qcow2 ro and any backing file: 100 / 201,203
 */
export function imagePerms(r: ImageRole): Perms {
  if (r.protocolOnly || (r.noIo && r.format === "raw")) return { perm: 0, shared: BLK_PERM_ALL };
  if (r.forceShare) return { perm: BLK_PERM_CONSISTENT_READ, shared: BLK_PERM_ALL };
  const readers = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
  if (r.backing) return { perm: BLK_PERM_CONSISTENT_READ, shared: readers };
  if (r.format === "qcow2") {
    return r.readOnly ? { perm: BLK_PERM_CONSISTENT_READ, shared: readers } : { perm: BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE | BLK_PERM_RESIZE, shared: readers };
  }
  return { perm: BLK_PERM_CONSISTENT_READ | (r.readOnly ? 0 : BLK_PERM_WRITE), shared: readers | BLK_PERM_RESIZE };
}

/** The part of fs-native-extensions minivm uses; on Linux each call is one fcntl(F_OFD_SETLK). */
interface NativeLocks {
  tryLock(fd: number, offset: number, length: number, opts: { shared: boolean }): boolean;
  unlock(fd: number, offset: number, length: number): void;
}

let native: NativeLocks | null = null;
function locks(): NativeLocks {
  // Loaded on first use: a process that never locks an image never loads the addon.
  native ??= createRequire(import.meta.url)("fs-native-extensions") as NativeLocks;
  return native;
}

/**
 * qemu_has_ofd_lock: the package takes OFD locks on Linux only (flock on macOS, which ignores
 * ranges, and mandatory LockFileEx on Windows, which would block I/O to bytes 100..203).
 */
export function hasOfdLocks(): boolean {
  return process.platform === "linux";
}

/** A lock conflict, in QEMU's words; `desc` is the QMP error text, `message` adds the hint. */
export class ImageLockError extends ImageOpenError {
  constructor(
    readonly desc: string,
    /** Set when the check found someone else's lock: QEMU then adds its hint line. */
    filename: string | null,
  ) {
    super(filename === null ? desc : `${desc}\nIs another process using the image [${filename}]?`);
  }
}

function bits(mask: number): number[] {
  return PERM_BITS.filter((i) => (mask & (1 << i)) !== 0);
}

/**
 * The lock state of one open file (QEMU's BDRVRawState perm/shared_perm/locked_*). `wanted`
 * is what the opener needs; while inactive (migration: before the destination starts, after
 * the source hands over) no byte is locked at all, as with QEMU's BDRV_O_INACTIVE.
 */
export class ImageLock {
  /** Permissions currently in force (held, and checked against others). */
  private perm = 0;
  private shared = BLK_PERM_ALL;
  /** Bytes actually locked on the fd, as permission masks. */
  private lockedPerm = 0;
  private lockedShared = 0;
  private inactive: boolean;

  constructor(
    private readonly fd: number,
    readonly filename: string,
    readonly wanted: Perms,
    opts: { inactive?: boolean } = {},
  ) {
    this.inactive = opts.inactive ?? false;
  }

  /** Takes the wanted permissions unless the lock starts inactive; throws ImageLockError. */
  acquire(): void {
    if (!this.inactive) this.setPerms(this.wanted);
  }

  get active(): boolean {
    return !this.inactive;
  }

  /** The bytes this fd locks now, for tests and `info`-style reporting. */
  lockedBytes(): number[] {
    return [...bits(this.lockedPerm).map((i) => RAW_LOCK_PERM_BASE + i), ...bits(this.lockedShared).map((i) => RAW_LOCK_SHARED_BASE + i)];
  }

  /**
   * raw_handle_perm_lock: PREPARE locks the union of old and new, then checks the new against
   * everyone else; on a conflict ABORT goes back to the old bytes, otherwise COMMIT drops what
   * is no longer needed.
   */
  setPerms(p: Perms): void {
    if ((this.perm | p.perm) === this.perm && (this.shared & p.shared) === this.shared) {
      this.apply(p.perm, ~p.shared & BLK_PERM_ALL, true);
      this.perm = p.perm;
      this.shared = p.shared;
      return;
    }
    try {
      this.apply(this.perm | p.perm, (~this.shared | ~p.shared) & BLK_PERM_ALL, false);
      this.check(p);
    } catch (e) {
      this.apply(this.perm, ~this.shared & BLK_PERM_ALL, true);
      throw e;
    }
    this.apply(p.perm, ~p.shared & BLK_PERM_ALL, true);
    this.perm = p.perm;
    this.shared = p.shared;
  }

  /** bdrv_inactivate: every byte is released (QEMU's source after migration holds none). */
  inactivate(): void {
    this.apply(0, 0, true);
    this.perm = 0;
    this.shared = BLK_PERM_ALL;
    this.inactive = true;
  }

  /** bdrv_activate: take the wanted permissions now; stays inactive if someone holds them. */
  activate(): void {
    if (!this.inactive) return;
    this.setPerms(this.wanted);
    this.inactive = false;
  }

  /** raw_apply_lock_bytes: a shared lock on each byte asked for; with `unlock`, drop the rest. */
  private apply(permBits: number, unsharedBits: number, unlock: boolean): void {
    const fse = locks();
    for (const [base, want, held] of [
      [RAW_LOCK_PERM_BASE, permBits, "lockedPerm"],
      [RAW_LOCK_SHARED_BASE, unsharedBits, "lockedShared"],
    ] as const) {
      for (const i of PERM_BITS) {
        const bit = 1 << i;
        const off = base + i;
        if (want & bit && !(this[held] & bit)) {
          // A shared lock only fails against someone's exclusive one, which neither QEMU nor
          // minivm keeps; file-posix reports it so all the same.
          if (!fse.tryLock(this.fd, off, 1, { shared: true })) throw new ImageLockError(`Failed to lock byte ${off}`, null);
          this[held] |= bit;
        } else if (unlock && this[held] & bit && !(want & bit)) {
          fse.unlock(this.fd, off, 1);
          this[held] &= ~bit;
        }
      }
    }
  }

  /**
   * raw_check_lock_bytes. QEMU asks F_OFD_GETLK whether someone else's lock would refuse an
   * exclusive lock on the byte; the package has no GETLK (and an exclusive probe lock needs a
   * writable fd), so minivm reads the kernel's lock table, /proc/locks, which lists every
   * fcntl lock with its file: someone else holds the byte if more locks cover it than our
   * own fd's one (the locks of one open file description on adjacent bytes show as one line).
   */
  private check(p: Perms): void {
    const table = new LockTable(this.fd);
    for (const i of bits(p.perm)) {
      const off = RAW_LOCK_SHARED_BASE + i;
      if (table.holders(off) > ((this.lockedShared >> i) & 1)) throw new ImageLockError(`Failed to get "${PERM_NAMES[i]}" lock`, this.filename);
    }
    for (const i of bits(~p.shared & BLK_PERM_ALL)) {
      const off = RAW_LOCK_PERM_BASE + i;
      if (table.holders(off) > ((this.lockedPerm >> i) & 1)) throw new ImageLockError(`Failed to get shared "${PERM_NAMES[i]}" lock`, this.filename);
    }
  }
}

/**
 * The fcntl locks on one file, from /proc/locks (proc(5)): lines such as
 * `3: OFDLCK ADVISORY  READ -1 fe:00:2179152 100 101`, with the device as hex major:minor, the
 * inode, and an inclusive byte range ("EOF" for a lock to the end). Waiters (`->`) hold
 * nothing; flock locks never conflict with fcntl ones.
 */
class LockTable {
  private readonly ranges: Array<[number, number]> = [];

  constructor(fd: number) {
    const st = fstatSync(fd, { bigint: true });
    // glibc's dev_t: the major number in bits 8..19 and 32..63, the minor in 0..7 and 20..31.
    const major = Number(((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn));
    const minor = Number((st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn));
    for (const line of readFileSync("/proc/locks", "utf8").split("\n")) {
      const t = line.trim().split(/\s+/);
      if (t.length < 8 || t[1] === "->" || (t[1] !== "POSIX" && t[1] !== "OFDLCK")) continue;
      const id = /^([0-9a-f]+):([0-9a-f]+):(\d+)$/.exec(t[5]);
      if (id === null || parseInt(id[1], 16) !== major || parseInt(id[2], 16) !== minor || BigInt(id[3]) !== st.ino) continue;
      this.ranges.push([Number(t[6]), t[7] === "EOF" ? Infinity : Number(t[7])]);
    }
  }

  /** How many locks, ours included, cover byte `off`. */
  holders(off: number): number {
    return this.ranges.filter(([a, b]) => a <= off && off <= b).length;
  }
}
