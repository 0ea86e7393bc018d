import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

describe("minivm --version", () => {
  it("prints the package name and version", () => {
    const out = execFileSync(process.execPath, ["bin/minivm.js", "--version"], { encoding: "utf8" });
    expect(out).toMatch(/^minivm \d+\.\d+\.\d+\n$/);
  });
});
