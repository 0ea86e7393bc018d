// minivm's own version (from package.json) and the QEMU version whose QMP it follows.
import { readFileSync } from "node:fs";

function packageVersion(): string {
  // Works from src/ (vitest) and from dist/src/ (the built CLI).
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8"));
      if (typeof pkg === "object" && pkg !== null && "name" in pkg && pkg.name === "minivm" && "version" in pkg && typeof pkg.version === "string") {
        return pkg.version;
      }
    } catch {
      // try the next candidate
    }
  }
  return "0.0.0";
}

export const MINIVM_VERSION = packageVersion();

/** The QEMU release whose QMP behaviour minivm reproduces (and reports in the greeting). */
export const QEMU_COMPAT_VERSION = { major: 7, minor: 2, micro: 0 } as const;

export const VERSION_INFO = {
  qemu: { ...QEMU_COMPAT_VERSION },
  package: `minivm ${MINIVM_VERSION}`,
};
