// Interop tests use the real tools. Where one is missing they skip, unless
// MINIVM_REQUIRE_INTEROP=1 (set by .ci/run), which turns the absence into a failure.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

function present(tool: string): boolean {
  if (tool.startsWith("/")) return existsSync(tool);
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** True when `tool` (a command or an absolute path) is available; throws if it must be. */
export function requireTool(tool: string, debianPackage: string): boolean {
  if (present(tool)) return true;
  if (process.env.MINIVM_REQUIRE_INTEROP === "1") {
    throw new Error(`${tool} is missing (Debian package ${debianPackage}) and MINIVM_REQUIRE_INTEROP=1`);
  }
  return false;
}

/**
 * A file from QEMU 7.2's source package (e.g. "scripts/vmstate-static-checker.py"), which
 * .ci/qemu-source unpacks outside the repository and names in MINIVM_QEMU_SRC. Null when it
 * is not there; a failure instead under MINIVM_REQUIRE_INTEROP=1.
 */
export function qemuSourceFile(rel: string): string | null {
  const root = process.env.MINIVM_QEMU_SRC;
  const file = root === undefined || root === "" ? null : `${root}/${rel}`;
  if (file !== null && existsSync(file) && present("python3")) return file;
  if (process.env.MINIVM_REQUIRE_INTEROP === "1") {
    throw new Error(`QEMU's ${rel} is missing (run .ci/qemu-source and set MINIVM_QEMU_SRC) and MINIVM_REQUIRE_INTEROP=1`);
  }
  return null;
}
