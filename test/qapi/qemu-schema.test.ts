// QEMU 7.2's whole schema (qapi/qapi-schema.json from the QEMU source tree
// named by MINIVM_QEMU_SRC; never committed here): the checker accepts it,
// its introspection is exactly what qemu-system-riscv32 -M virt answers to
// query-qmp-schema, and the generators handle it.

import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { generateFiles } from "../../src/qapi/gen/generate.js";
import { introspect } from "../../src/qapi/introspect.js";
import type { JsonValue } from "../../src/qapi/introspect.js";
import { Schema } from "../../src/qapi/model.js";
import { qemuSourceFile, requireTool } from "../helpers/interop.js";

const top = qemuSourceFile("qapi/qapi-schema.json");

// The 'if' symbols that hold in Debian 12's qemu-system-riscv32 7.2 build (its
// config-host.h and riscv32-softmmu config-target.h): none of the TARGET_*
// conditions of qapi/*-target.json is for RISC-V.
const RISCV32_DEBIAN_CONFIG = [
  "CONFIG_CURSES",
  "CONFIG_DBUS_DISPLAY",
  "CONFIG_FDT",
  "CONFIG_FUSE",
  "CONFIG_GBM",
  "CONFIG_GTK",
  "CONFIG_LIBPMEM",
  "CONFIG_LINUX",
  "CONFIG_LINUX_IO_URING",
  "CONFIG_OPENGL",
  "CONFIG_POSIX",
  "CONFIG_REPLICATION",
  "CONFIG_SDL",
  "CONFIG_SECRET_KEYRING",
  "CONFIG_SPICE",
  "CONFIG_SPICE_PROTOCOL",
  "CONFIG_TCG",
  "CONFIG_TPM",
  "CONFIG_VDUSE_BLK_EXPORT",
  "CONFIG_VHOST_CRYPTO",
  "CONFIG_VHOST_USER_BLK_SERVER",
  "CONFIG_VNC",
  "CONFIG_ZSTD",
  "HAVE_HOST_BLOCK_DEVICE",
  "HAVE_IPPROTO_MPTCP",
];

/** QEMU's own answer to query-qmp-schema, over QMP on stdio. */
function qemuQmpSchema(): JsonValue[] {
  const input = ['{"execute":"qmp_capabilities"}', '{"execute":"query-qmp-schema"}', '{"execute":"quit"}', ""].join("\n");
  const run = spawnSync(
    "qemu-system-riscv32",
    ["-M", "virt", "-bios", "none", "-S", "-nodefaults", "-display", "none", "-qmp", "stdio"],
    { input, encoding: "utf8", maxBuffer: 64 << 20 },
  );
  for (const line of run.stdout.split("\n")) {
    if (line.trim() === "") continue;
    const msg = JSON.parse(line) as { return?: JsonValue };
    if (Array.isArray(msg.return)) return msg.return;
  }
  throw new Error(`no query-qmp-schema reply from QEMU: ${run.stderr}`);
}

/** Object keys sorted: QEMU prints a QDict in its hash table's order, not the schema's. */
function canonical(v: JsonValue): JsonValue {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical(v[k]!)]),
    );
  }
  return v;
}

describe.skipIf(top === null)("QEMU's full schema", () => {
  const load = (): Schema => Schema.load(top!);

  it("passes the checker", () => {
    expect(load).not.toThrow();
  });

  it("introspects with the entries QEMU 7.2 reports first", () => {
    const entries = introspect(load()).map((e) => e.value);
    expect(entries[0]).toEqual({ name: "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "1" });
    expect(entries.find((e) => e["name"] === "qmp_capabilities")).toMatchObject({ "meta-type": "command" });
    expect(entries.length).toBeGreaterThan(500);
  });

  it.skipIf(!requireTool("qemu-system-riscv32", "qemu-system-misc"))(
    "introspects, with the riscv32 build's configuration, to exactly what qemu-system-riscv32 answers",
    () => {
      const ours = introspect(load(), { defined: new Set(RISCV32_DEBIAN_CONFIG) }).map((e) => canonical(e.value));
      const theirs = qemuQmpSchema().map(canonical);
      const names = (l: JsonValue[]): string[] =>
        l.map((e) => e as { name: string; "meta-type": string }).filter((e) => e["meta-type"] === "command").map((e) => e.name);
      // Commands first, so a difference there reads plainly, then every entry in order.
      expect(names(ours)).toEqual(names(theirs));
      for (let i = 0; i < Math.max(ours.length, theirs.length); i++) expect(ours[i], `entry ${i}`).toEqual(theirs[i]);
    },
  );

  it("generates code for it", () => {
    const files = generateFiles(load(), { defined: new Set() });
    expect(files.get("types.ts")).toContain("export interface StatusInfo");
    expect(files.get("commands.ts")).toContain('"query-qmp-schema"');
  });
});
