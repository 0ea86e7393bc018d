// `minivm run --guest linux`: the Linux guest built in guests/linux (docs/linux-guest.md).
// Its kernel, initramfs and disk are committed gzip-compressed; the kernel is unpacked in
// memory (QEMU 7.2's -kernel does not gunzip either; the kernel itself unpacks the
// initramfs), the disk into a private temporary file removed at exit, so the shipped image
// never changes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { packageFile } from "./builtin.js";

export const LINUX_KERNEL = "guests/linux/build/Image.gz";
export const LINUX_INITRD = "guests/linux/build/initramfs.cpio.gz";
export const LINUX_DISK = "guests/linux/build/disk.img.gz";
/** The serial console, the ext2 root on the first partition of the virtio-blk disk, read-only. */
export const LINUX_APPEND = "console=ttyS0 root=/dev/vda1 ro";

export const GUESTS = ["linux"] as const;

export interface GuestFiles {
  kernel: Uint8Array;
  initrd: Uint8Array;
  /** A private raw copy of the shipped disk, deleted when the process exits. */
  diskPath: string;
  append: string;
}

export async function linuxGuestFiles(): Promise<GuestFiles> {
  const kernel = new Uint8Array(gunzipSync(await readFile(packageFile(LINUX_KERNEL))));
  const initrd = new Uint8Array(await readFile(packageFile(LINUX_INITRD)));
  const dir = mkdtempSync(join(tmpdir(), "minivm-linux-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const diskPath = join(dir, "disk.img");
  writeFileSync(diskPath, gunzipSync(await readFile(packageFile(LINUX_DISK))));
  return { kernel, initrd, diskPath, append: LINUX_APPEND };
}
