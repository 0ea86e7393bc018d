// Files minivm ships (firmware, the teaching disk), found relative to the package whether
// running from dist/ (the built CLI) or from src/ (tests).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export function packageFile(rel: string): string {
  for (const up of ["../../", "../../../"]) {
    const p = fileURLToPath(new URL(up + rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`minivm's own file ${rel} is missing from the installation`);
}

/** minivm's SBI firmware, the default `--bios`. */
export const DEFAULT_FIRMWARE = "firmware/build/minivm-sbi.elf";
/** The teaching guest's disk, booted when no disk is named. */
export const BUILTIN_DISK = "firmware/build/disk.img";
