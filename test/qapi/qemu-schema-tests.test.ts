// QEMU 7.2's own QAPI frontend tests (tests/qapi-schema): every case its
// meson.build lists, plus the missing-schema case it adds by hand, must get
// QEMU's verdict, and a refused case QEMU's exact message. Like QEMU's
// test-qapi.py, the message is compared with the test directory removed from
// file names. The cases come from the QEMU source tree named by
// MINIVM_QEMU_SRC; nothing of QEMU's is kept in this repository.

import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { Schema } from "../../src/qapi/model.js";
import { QapiError } from "../../src/qapi/source.js";
import { qemuSourceFile } from "../helpers/interop.js";
import { dumpSchema } from "./qemu-out.js";

const meson = qemuSourceFile("tests/qapi-schema/meson.build");
const dir = meson === null ? "" : path.dirname(meson);

/** The cases QEMU's "QAPI schema regression tests" run, in meson.build's order. */
function caseNames(): string[] {
  if (meson === null) return [];
  const text = readFileSync(meson, "utf8");
  const start = text.indexOf("schemas = [");
  const list = text.slice(start, text.indexOf("]", start));
  const names = [...list.matchAll(/'([^']+)\.json'/g)].map((m) => m[1]!);
  // meson.build appends this one outside the list: its schema file does not exist.
  names.push("missing-schema");
  return names;
}

/** What QEMU's test-qapi.py would write to the .err file, and the loaded schema when valid. */
function run(name: string): { err: string; schema: Schema | null } {
  try {
    return { err: "", schema: Schema.load(path.join(dir, `${name}.json`)) };
  } catch (err) {
    if (!(err instanceof QapiError)) throw err;
    return { err: err.message.split(dir + "/").join("") + "\n", schema: null };
  }
}

const names = caseNames();

describe.skipIf(meson === null)("QEMU 7.2's tests/qapi-schema cases", () => {
  it("are all there (198, as QEMU 7.2's meson.build runs)", () => {
    expect(names).toHaveLength(198);
    for (const n of names.slice(0, -1)) expect(existsSync(path.join(dir, `${n}.err`)), n).toBe(true);
  });

  for (const name of names) {
    it(`${name}: QEMU's verdict and message`, () => {
      const expected = readFileSync(path.join(dir, `${name}.err`), "utf8");
      expect(run(name).err).toBe(expected);
    });
  }

  for (const name of names) {
    const outFile = path.join(dir, `${name}.out`);
    if (!existsSync(outFile) || readFileSync(outFile, "utf8") === "") continue;
    it(`${name}: the schema and its documentation read as QEMU's .out shows`, () => {
      const { schema } = run(name);
      expect(schema).not.toBeNull();
      expect(dumpSchema(schema!)).toBe(readFileSync(outFile, "utf8"));
    });
  }
});
