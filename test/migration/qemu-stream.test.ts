// A stream written by QEMU 7.2 itself (riscv32 virt, `migrate "exec:cat > FILE"` from HMP):
// minivm's loader reads its header, configuration and RAM START the same way, and refuses it
// where the two boards really differ (QEMU's flash blocks), in QEMU's words.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Machine } from "../../src/core/machine.js";
import { loadMigrationStream, MigrationLoadError } from "../../src/migration/load.js";
import { requireTool } from "../helpers/interop.js";
import { readerOf, targetOf } from "./stream-helpers.js";

describe("a QEMU 7.2 stream", () => {
  const have = requireTool("qemu-system-riscv32", "qemu-system-misc");
  it.skipIf(!have)("is read up to QEMU's first flash block, which minivm's board does not have", async () => {
    const dir = mkdtempSync(join(tmpdir(), "minivm-qemu-stream-"));
    try {
      const file = join(dir, "q.mig");
      execFileSync(
        "qemu-system-riscv32",
        ["-M", "virt", "-m", "128M", "-bios", "none", "-display", "none", "-S", "-nodefaults", "-serial", "none", "-monitor", "stdio"],
        { input: `migrate "exec:cat > ${file}"\nquit\n`, stdio: ["pipe", "ignore", "ignore"], timeout: 60_000 },
      );
      const bytes = readFileSync(file);
      const dst = new Machine({ serialOut: () => {} });
      const target = targetOf(dst);
      const err = await loadMigrationStream(readerOf(bytes), target).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationLoadError);
      // riscv_virt_board.ram (128 MiB) matched; the next block of QEMU's list is not ours.
      expect((err as Error).message).toBe('Unknown ramblock "virt.flash0", cannot accept migration');
      expect(target.adopted).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
