// The QMP shell's line syntax (qmp-shell's): key=value words, dotted keys, JSON values, quotes.
import { describe, expect, it } from "vitest";
import { parseShellLine } from "../../src/qmp/shell.js";

describe("minivm qmp's line syntax", () => {
  it("reads a JSON array or object value with its own quotes, as qmp-shell does", () => {
    expect(parseShellLine('migrate-set-capabilities capabilities=[{"capability":"events","state":true}]')).toEqual({
      execute: "migrate-set-capabilities",
      arguments: { capabilities: [{ capability: "events", state: true }] },
      oob: false,
    });
  });

  it("keeps a quoted value a string, numbers and booleans typed, dotted keys nested, ! out-of-band", () => {
    expect(parseShellLine('!human-monitor-command command-line="info status" a.b=1 c=true d="42" e=[x')).toEqual({
      execute: "human-monitor-command",
      arguments: { "command-line": "info status", a: { b: 1 }, c: true, d: "42", e: "[x" },
      oob: true,
    });
  });
});
