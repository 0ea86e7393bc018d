// The `minivm` command: sub-commands run, qmp, qapi, img. Options follow QEMU's spelling
// where QEMU has one, including its single-dash long options (`-qmp`, `-chardev`, `-mon`).

import { MINIVM_VERSION } from "../version.js";

/** QEMU's single-dash long options that minivm understands, rewritten to `--name`. */
const QEMU_LONG_OPTIONS = new Set([
  "qmp", "chardev", "mon", "name", "serial", "drive", "blockdev", "kernel", "bios", "incoming",
  "no-shutdown", "machine", "display", "nographic", "nodefaults", "append", "initrd", "device",
  "smp", "no-reboot", "daemonize", "pidfile", "dump-vmstate", "gdb", "cpu",
  "object",
]);

/** Put back the spelling the user typed into a parser message about a rewritten option. */
export function restoreSpelling(message: string, argv: string[]): string {
  return message.replace(/'--([a-z][a-z-]+)'/g, (whole, name: string) =>
    argv.some((a) => a === `-${name}` || a.startsWith(`-${name}=`)) ? `'-${name}'` : whole,
  );
}

export function normalizeQemuOptions(argv: string[]): string[] {
  return argv.map((a) => {
    if (/^-[a-z][a-z-]+(=.*)?$/.test(a)) {
      const name = a.slice(1).split("=")[0] ?? "";
      if (QEMU_LONG_OPTIONS.has(name)) return "-" + a;
    }
    return a;
  });
}

export async function main(argv: string[]): Promise<number> {
  // Answer --version before loading anything else: it is what scripts call most.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    process.stdout.write(`minivm ${MINIVM_VERSION}\n`);
    return 0;
  }
  const { buildProgram } = await import("./program.js");
  let status = 0;
  const program = buildProgram(
    (code) => {
      status = code;
    },
    (message) => restoreSpelling(message, argv),
  );
  try {
    await program.parseAsync(normalizeQemuOptions(argv), { from: "user" });
  } catch (e) {
    // commander has already printed its own message (usage errors, --help).
    if (e instanceof Error && "exitCode" in e && typeof e.exitCode === "number" && "code" in e) return e.exitCode;
    throw e;
  }
  return status;
}
