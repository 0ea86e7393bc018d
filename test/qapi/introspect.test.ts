import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { introspect } from "../../src/qapi/introspect.js";
import { Schema } from "../../src/qapi/model.js";
import { QMP_SCHEMA_INFO } from "../../src/qapi/generated/introspect.js";

const VALID = path.resolve(import.meta.dirname, "schemas/valid/main.json");

function values(schema: Schema, opts: Parameters<typeof introspect>[1] = {}): unknown[] {
  return introspect(schema, opts).map((e) => e.value);
}

function expected(name: string): unknown {
  return JSON.parse(readFileSync(path.resolve(import.meta.dirname, "schemas/valid", name), "utf8"));
}

describe("introspection of a schema using every construct", () => {
  const schema = Schema.load(VALID);

  it("matches the expected masked output with no configuration symbols defined", () => {
    expect(values(schema)).toEqual(expected("introspect.expected.json"));
  });

  it("matches the expected unmasked output with every symbol defined", () => {
    const defined = new Set(["CONFIG_FOO", "CONFIG_BLUE", "CONFIG_SQUARE", "CONFIG_SECRET"]);
    expect(values(schema, { unmask: true, defined })).toEqual(expected("introspect-unmasked-all.expected.json"));
  });

  it("lists commands and events first, module by module as QEMU's qapi-gen does, then types in the order first used", () => {
    const names = values(schema).map((e) => (e as { name: string }).name);
    // 'hold' is defined in the included sub/types.json: the main file's module comes first.
    expect(names.slice(0, 3)).toEqual(["ping", "do_legacy", "get-count"]);
    expect(names.slice(11, 13)).toEqual(["TICK", "hold"]);
    expect(names.slice(13, 16)).toEqual(["0", "1", "int"]);
  });

  it("numbers the empty object once and shares it between commands and events", () => {
    const v = values(schema) as Record<string, unknown>[];
    expect(v.find((e) => e.name === "ping")).toEqual({ name: "ping", "meta-type": "command", "arg-type": "0", "ret-type": "0" });
    expect(v.find((e) => e.name === "TICK")).toEqual({ name: "TICK", "meta-type": "event", "arg-type": "0", features: ["unstable"] });
    expect(v.find((e) => e.name === "0")).toEqual({ name: "0", "meta-type": "object", members: [] });
  });

  it("shows every integer type as int, arrays as [element], and allow-oob only when true", () => {
    const v = values(schema, { unmask: true }) as Record<string, unknown>[];
    expect(v.find((e) => e.name === "Holder")).toMatchObject({
      members: [
        { name: "value", type: "Value" },
        { name: "scalars", type: "[Scalar]" },
        { name: "bytes", type: "[int]" },
        { name: "counts", type: "[int]" },
        { name: "big", type: "[int]", default: null },
      ],
    });
    expect(v.find((e) => e.name === "get-things")).toEqual({
      name: "get-things",
      "meta-type": "command",
      "arg-type": "q_obj_get-things-arg",
      "ret-type": "[Thing]",
      "allow-oob": true,
      features: ["unstable"],
    });
    expect(v.find((e) => e.name === "ping")).not.toHaveProperty("allow-oob");
  });

  it("evaluates all/any/not conditions against the defined symbols", () => {
    const names = (defined: string[]): string[] =>
      values(schema, { unmask: true, defined: new Set(defined) }).map((e) => (e as { name: string }).name);
    expect(names([])).toContain("only-without-foo-or-with-bar-and-baz");
    expect(names([])).not.toContain("only-with-foo");
    expect(names(["CONFIG_FOO"])).not.toContain("only-without-foo-or-with-bar-and-baz");
    expect(names(["CONFIG_FOO", "CONFIG_BAR"])).not.toContain("only-without-foo-or-with-bar-and-baz");
    expect(names(["CONFIG_FOO", "CONFIG_BAR", "CONFIG_BAZ"])).toContain("only-without-foo-or-with-bar-and-baz");
  });

  it("gives enums both members (with features) and values, and unions their flattened base", () => {
    const v = values(schema, { unmask: true }) as Record<string, unknown>[];
    expect(v.find((e) => e.name === "Colour")).toEqual({
      name: "Colour",
      "meta-type": "enum",
      members: [{ name: "red" }, { name: "green", features: ["deprecated"] }, { name: "3d" }],
      values: ["red", "green", "3d"],
      features: ["fancy"],
    });
    expect(v.find((e) => e.name === "Shape")).toEqual({
      name: "Shape",
      "meta-type": "object",
      members: [
        { name: "kind", type: "ShapeKind" },
        { name: "label", type: "str", default: null },
      ],
      tag: "kind",
      variants: [
        { case: "circle", type: "Circle" },
        { case: "point", type: "q_empty" },
      ],
    });
  });
});

describe("minivm's query-qmp-schema", () => {
  const schema = Schema.load(path.resolve(import.meta.dirname, "../../schema/qapi-schema.json"));

  it("is what the generated QMP_SCHEMA_INFO holds", () => {
    expect(QMP_SCHEMA_INFO).toEqual(values(schema));
  });

  it("has QEMU 7.2's shape for query-status and qmp_capabilities", () => {
    const v = QMP_SCHEMA_INFO as Record<string, unknown>[];
    // QEMU 7.2: {"name": "query-status", "ret-type": "1", "meta-type": "command", "arg-type": "0"}
    expect(v[0]).toEqual({ name: "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "1" });
    const status = v.find((e) => e.name === "1") as { members: { name: string; type: string }[] };
    expect(status).toEqual({
      name: "1",
      "meta-type": "object",
      members: [
        { name: "running", type: "bool" },
        { name: "singlestep", type: "bool" },
        { name: "status", type: expect.stringMatching(/^\d+$/) },
      ],
    });
    expect(v.find((e) => e.name === status.members[2]!.type)).toMatchObject({ "meta-type": "enum", values: expect.arrayContaining(["prelaunch", "running", "paused"]) });
    const caps = v.find((e) => e.name === "qmp_capabilities") as { "arg-type": string };
    const arg = v.find((e) => e.name === caps["arg-type"]) as { members: { name: string; type: string }[] };
    expect(arg.members).toEqual([{ name: "enable", type: expect.stringMatching(/^\[\d+\]$/), default: null }]);
    expect(v.find((e) => e.name === "human-monitor-command")).toMatchObject({ "ret-type": "str" });
  });

  it("describes the SchemaInfo union as QEMU 7.2 does", () => {
    const v = values(schema, { unmask: true }) as Record<string, unknown>[];
    expect(v.find((e) => e.name === "SchemaInfo")).toEqual({
      name: "SchemaInfo",
      "meta-type": "object",
      members: [
        { name: "name", type: "str" },
        { name: "meta-type", type: "SchemaMetaType" },
        { name: "features", type: "[str]", default: null },
      ],
      tag: "meta-type",
      variants: ["builtin", "enum", "array", "object", "alternate", "command", "event"].map((c) => ({
        case: c,
        type: "SchemaInfo" + c[0]!.toUpperCase() + c.slice(1),
      })),
    });
    expect(v.find((e) => e.name === "SchemaInfoEnum")).toEqual({
      name: "SchemaInfoEnum",
      "meta-type": "object",
      members: [
        { name: "members", type: "[SchemaInfoEnumMember]" },
        { name: "values", type: "[str]", features: ["deprecated"] },
      ],
    });
  });
});
