// The dashboard screenshots the tutorials in docs/ show: each is there, a real PNG of the page
// at the Chromium tests' 1400-pixel width, and big enough to be a rendered page rather than a
// blank one (MINIVM_UPDATE_SCREENSHOT=1 with test/dashboard/ refreshes them).
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const DOCS = join(import.meta.dirname, "../../docs");

const SHOTS: Array<[string, string]> = [
  ["dashboard.png", "demo-oob.md"],
  ["demo-histogram.png", "demo-histogram.md"],
  ["demo-precopy.png", "demo-precopy.md"],
  ["demo-postcopy.png", "demo-postcopy.md"],
  ["demo-recovery.png", "demo-recovery.md"],
];

describe("the dashboard screenshots in docs/", () => {
  for (const [png, tutorial] of SHOTS) {
    it(`${png} is a full-width page screenshot of sane size, shown by docs/${tutorial}`, () => {
      const file = join(DOCS, png);
      const bytes = readFileSync(file);
      expect(bytes.subarray(0, 8).toString("latin1")).toBe("\x89PNG\r\n\x1a\n");
      expect(bytes.readUInt32BE(16)).toBe(1400);
      expect(bytes.readUInt32BE(20)).toBeGreaterThanOrEqual(1000);
      expect(statSync(file).size).toBeGreaterThan(30_000);
      expect(statSync(file).size).toBeLessThan(2_000_000);
      expect(readFileSync(join(DOCS, tutorial), "utf8")).toContain(`](${png})`);
    });
  }
});
