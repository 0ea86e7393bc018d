#!/usr/bin/env node
// Makes a disk in minivm's boot format (docs/boot-format.md): an MBR with partition 1 of
// type 0x7f at 1 MiB holding the ELF, and partition 2 of type 0xda (the guest's scratch
// area) filling the rest. The same bytes every time: a fixed disk signature, no timestamps.
//
//   node firmware/tools/mkdisk.mjs GUEST.elf DISK.img [SIZE_MIB]
import { readFileSync, writeFileSync } from "node:fs";

const SECTOR = 512;
const BOOT_LBA = 2048; // 1 MiB, where fdisk and sfdisk start the first partition
const BOOT_SECTORS = 2048; // 1 MiB for the ELF
const TYPE_BOOT = 0x7f;
const TYPE_DATA = 0xda;
const DISK_SIGNATURE = 0x6d766d31; // "mvm1"

// The CHS fields nobody reads any more, filled the conventional way (255 heads, 63 sectors).
function chs(lba) {
  const c = Math.min(Math.floor(lba / (255 * 63)), 1023);
  const h = Math.floor(lba / 63) % 255;
  const s = (lba % 63) + 1;
  return [h, s | ((c >> 8) << 6), c & 0xff];
}

function entry(mbr, index, { bootable, type, lba, sectors }) {
  const at = 446 + 16 * index;
  mbr[at] = bootable ? 0x80 : 0x00;
  mbr.set(chs(lba), at + 1);
  mbr[at + 4] = type;
  mbr.set(chs(lba + sectors - 1), at + 5);
  mbr.writeUInt32LE(lba, at + 8);
  mbr.writeUInt32LE(sectors, at + 12);
}

/** Returns a whole disk image of `sizeMiB` MiB that boots `elf` on minivm-sbi. */
export function makeBootDisk(elf, sizeMiB) {
  if (elf.length < 52 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error("the payload is not an ELF file");
  if (elf.length > BOOT_SECTORS * SECTOR) throw new Error(`the ELF is ${elf.length} bytes; the boot partition holds ${BOOT_SECTORS * SECTOR}`);
  const total = sizeMiB * 2048;
  if (!Number.isInteger(sizeMiB) || total <= BOOT_LBA + BOOT_SECTORS) throw new Error(`disk size must be a whole number of MiB above 2, got ${sizeMiB}`);
  const disk = Buffer.alloc(total * SECTOR);
  const mbr = disk.subarray(0, SECTOR);
  mbr.writeUInt32LE(DISK_SIGNATURE, 440);
  entry(mbr, 0, { bootable: true, type: TYPE_BOOT, lba: BOOT_LBA, sectors: BOOT_SECTORS });
  entry(mbr, 1, { bootable: false, type: TYPE_DATA, lba: BOOT_LBA + BOOT_SECTORS, sectors: total - BOOT_LBA - BOOT_SECTORS });
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  elf.copy(disk, BOOT_LBA * SECTOR);
  return disk;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [elfPath, outPath, mib = "4"] = process.argv.slice(2);
  if (!elfPath || !outPath) {
    console.error("usage: mkdisk.mjs GUEST.elf DISK.img [SIZE_MIB]");
    process.exit(2);
  }
  writeFileSync(outPath, makeBootDisk(readFileSync(elfPath), Number(mib)));
}
