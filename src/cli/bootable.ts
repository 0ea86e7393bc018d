// `minivm img create --bootable ELF DISK [SIZE]`: a raw disk in minivm's boot format
// (docs/boot-format.md) around an S-mode ELF. The disk layout lives in one place,
// firmware/tools/mkdisk.mjs, which the firmware's own Makefile uses too.
import { readFile, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { packageFile } from "./builtin.js";

interface MkDisk {
  makeBootDisk(elf: Buffer, sizeMiB: number): Buffer;
}

/** Returns an exit status; messages go to stderr/stdout like qemu-img's. */
export async function createBootable(args: string[]): Promise<number> {
  const rest = args.filter((a) => a !== "--bootable" && a !== "-f" && a !== "raw");
  const [elfPath, diskPath, sizeText] = rest;
  if (elfPath === undefined || diskPath === undefined) {
    process.stderr.write("minivm img: usage: img create --bootable ELF DISK [SIZE_MIB|SIZEM]\n");
    return 1;
  }
  if (args.includes("-f") && !args.includes("raw")) {
    process.stderr.write("minivm img: a bootable disk is raw; convert it to qcow2 afterwards with img convert\n");
    return 1;
  }
  const sizeMiB = sizeText === undefined ? 4 : Number(sizeText.replace(/M$/i, ""));
  if (!Number.isInteger(sizeMiB) || sizeMiB < 3) {
    process.stderr.write(`minivm img: invalid size '${sizeText}': give whole MiB, at least 3\n`);
    return 1;
  }
  const elf = await readFile(elfPath).catch((e: unknown) => {
    throw new Error(`Could not open '${elfPath}': ${e instanceof Error ? e.message : String(e)}`);
  });
  if (elf.subarray(0, 4).toString("latin1") !== "\x7fELF") throw new Error(`'${elfPath}' is not an ELF file`);
  const mk = (await import(pathToFileURL(packageFile("firmware/tools/mkdisk.mjs")).href)) as MkDisk;
  await writeFile(diskPath, mk.makeBootDisk(elf, sizeMiB));
  process.stdout.write(`Formatting '${diskPath}', fmt=raw size=${sizeMiB * 1048576} bootable=${elfPath}\n`);
  return 0;
}
