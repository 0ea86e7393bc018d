// `minivm run --dump-vmstate FILE` writes the board's VMState descriptions in QEMU's
// -dump-vmstate shape, and QEMU's own scripts/vmstate-static-checker.py judges them: this
// build against the dump of the last release (test/migration/vmstate-dump-0.1.0.json, made by
// this same command), so a change that would break migration from it fails here unless its
// description's version says so; and altered dumps, to show the checker reads ours at all.

import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { qemuSourceFile } from "../helpers/interop.js";
import { BIN, tempDir } from "../helpers/vm.js";

const BASELINE = join(import.meta.dirname, "../migration/vmstate-dump-0.1.0.json");
const checker = qemuSourceFile("scripts/vmstate-static-checker.py");

type Dump = Record<string, { Description?: { Fields: { field: string; size: number }[]; version_id: number } ; version_id?: number }>;

function dumpNow(dir: string): string {
  const file = join(dir, "now.json");
  execFileSync(process.execPath, [BIN, "run", "--dump-vmstate", file]);
  return file;
}

function check(src: string, dest: string): { status: number | null; out: string } {
  const r = spawnSync("python3", [checker ?? "", "-s", src, "-d", dest], { encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe("--dump-vmstate", () => {
  it("writes every migrated description, keyed by QOM type, and exits", () => {
    const dump = JSON.parse(readFileSync(dumpNow(tempDir()), "utf8")) as Dump;
    expect(Object.keys(dump)).toEqual(expect.arrayContaining(["vmschkmachine", "timer", "rv32-riscv-cpu", "riscv.sifive.plic", "riscv.aclint.mtimer", "goldfish_rtc", "serial-mm", "virtio-mmio", "virtio-blk-device"]));
    const plic = dump["riscv.sifive.plic"].Description;
    expect(plic?.Fields.map((f) => f.field)).toContain("source_priority");
  });

  describe.skipIf(checker === null)("judged by QEMU's vmstate-static-checker.py", () => {
    it("finds this build compatible with the last release's dump, both ways", () => {
      const now = dumpNow(tempDir());
      expect(check(BASELINE, now)).toEqual({ status: 0, out: "" });
      expect(check(now, BASELINE)).toEqual({ status: 0, out: "" });
    });

    it("reports a field whose size changed without a version bump", () => {
      const dir = tempDir();
      const now = dumpNow(dir);
      const dump = JSON.parse(readFileSync(now, "utf8")) as Dump;
      const field = dump["serial-mm"].Description?.Fields.find((f) => f.field === "divider");
      expect(field).toBeDefined();
      if (field) field.size = 4;
      const changed = join(dir, "changed.json");
      writeFileSync(changed, JSON.stringify(dump));
      const r = check(now, changed);
      expect(r.status).not.toBe(0);
      expect(r.out).toMatch(/Section "serial-mm" Description "serial" Field "divider" size mismatch: 2 , 4/);
    });

    it("reports a destination that dropped a field or is an older version", () => {
      const dir = tempDir();
      const now = dumpNow(dir);
      const dump = JSON.parse(readFileSync(now, "utf8")) as Dump;
      const cpu = dump["rv32-riscv-cpu"];
      if (cpu.Description) cpu.Description.Fields = cpu.Description.Fields.slice(0, -1);
      const older = JSON.parse(readFileSync(now, "utf8")) as Dump;
      older["goldfish_rtc"].version_id = 0;
      const dropped = join(dir, "dropped.json");
      const old = join(dir, "older.json");
      writeFileSync(dropped, JSON.stringify(dump));
      writeFileSync(old, JSON.stringify(older));
      const a = check(now, dropped);
      expect(a.status).not.toBe(0);
      expect(a.out).toMatch(/Section "rv32-riscv-cpu", Description "cpu": expected field ".+", while dest has no further fields/);
      const b = check(now, old);
      expect(b.status).not.toBe(0);
      expect(b.out).toMatch(/Section "goldfish_rtc" version error: 1 > 0/);
    });
  });
});
