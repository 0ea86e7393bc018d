// firmware/tools/mkdisk.mjs writes the boot format of docs/boot-format.md: the committed
// disk is exactly its output, and it refuses what would not boot.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { makeBootDisk } from "../../firmware/tools/mkdisk.mjs";
import { DISK_IMG, GUEST_ELF } from "./console.js";

describe("makeBootDisk", () => {
  const elf = readFileSync(GUEST_ELF);

  it("makes exactly the committed firmware/build/disk.img from the committed guest", () => {
    expect(makeBootDisk(elf, 4).equals(readFileSync(DISK_IMG))).toBe(true);
  });

  it("lays out an MBR with the 0x7f boot partition at 1 MiB and the 0xda data partition after it", () => {
    const disk = makeBootDisk(elf, 8);
    expect(disk.length).toBe(8 << 20);
    expect([disk[510], disk[511]]).toEqual([0x55, 0xaa]);
    const entry = (i: number): number[] => {
      const at = 446 + 16 * i;
      return [disk[at] as number, disk[at + 4] as number, disk.readUInt32LE(at + 8), disk.readUInt32LE(at + 12)];
    };
    expect(entry(0)).toEqual([0x80, 0x7f, 2048, 2048]);
    expect(entry(1)).toEqual([0x00, 0xda, 4096, 8 * 2048 - 4096]);
    expect(disk.subarray(2048 * 512, 2048 * 512 + elf.length).equals(elf)).toBe(true);
  });

  it("refuses a payload that is not an ELF, one too big for the boot partition, and a disk too small", () => {
    expect(() => makeBootDisk(Buffer.from("#!/bin/sh\necho hi\n".padEnd(64)), 4)).toThrow(/not an ELF/);
    const huge = Buffer.alloc(2 << 20);
    elf.copy(huge, 0, 0, 64);
    expect(() => makeBootDisk(huge, 4)).toThrow(/boot partition holds 1048576/);
    expect(() => makeBootDisk(elf, 2)).toThrow(/above 2/);
  });
});
