import { existsSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { generateFiles } from "../../src/qapi/gen/generate.js";
import { introspect } from "../../src/qapi/introspect.js";
import { Schema } from "../../src/qapi/model.js";

// QEMU's own schema is never committed here; point MINIVM_QEMU_QAPI_DIR at a
// copy of QEMU's qapi/ directory to run these.
const dir = process.env["MINIVM_QEMU_QAPI_DIR"];
const top = dir ? path.join(dir, "qapi-schema.json") : "";

describe.skipIf(!dir || !existsSync(top))("QEMU's full schema", () => {
  it("passes the checker", () => {
    expect(() => Schema.load(top)).not.toThrow();
  });

  it("introspects with the entries QEMU 7.2 reports first", () => {
    const entries = introspect(Schema.load(top)).map((e) => e.value);
    expect(entries[0]).toEqual({ name: "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "1" });
    expect(entries.find((e) => e["name"] === "qmp_capabilities")).toMatchObject({ "meta-type": "command" });
    expect(entries.length).toBeGreaterThan(500);
  });

  it("generates code for it", () => {
    const files = generateFiles(Schema.load(top), { defined: new Set() });
    expect(files.get("types.ts")).toContain("export interface StatusInfo");
  });
});
