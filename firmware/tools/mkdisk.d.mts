// Types for mkdisk.mjs, so TypeScript (tests, `minivm img create --bootable`) can import it.

/** A whole disk image of `sizeMiB` MiB in minivm's boot format (docs/boot-format.md) holding `elf`. */
export function makeBootDisk(elf: Buffer, sizeMiB: number): Buffer;
