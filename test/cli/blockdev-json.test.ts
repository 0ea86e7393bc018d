// `-blockdev '{...}'` with broken JSON: minivm says what qemu-system-riscv32 says, in the same
// form (the option, its argument, the JSON parser's words), not Node's JSON.parse message.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseJsonValue } from "../../src/qmp/json-streamer.js";
import { requireTool } from "../helpers/interop.js";
import { BIN } from "../helpers/vm.js";

const run = promisify(execFile);

const BROKEN = ["{bad", '{"driver":"file",}', '{"driver":"file"} x', '{"driver":"file"', '{"driver":"fi', "{'driver': tru", '{"driver": 1e}', "{\x01}", '{"driver":"nope"}'];

async function stderrOf(cmd: string, args: string[]): Promise<string> {
  try {
    await run(cmd, args, { timeout: 30_000 });
  } catch (e) {
    return (e as { stderr: string }).stderr;
  }
  throw new Error(`${cmd} ${args.join(" ")} succeeded`);
}

describe("-blockdev with JSON that does not parse", () => {
  it("gives QEMU's JSON parse error, naming the argument", async () => {
    const err = await stderrOf(process.execPath, [BIN, "run", "-S", "--blockdev", "{bad"]);
    expect(err.trim()).toBe("minivm: -blockdev {bad: JSON parse error, invalid keyword 'bad'");
  });

  it.runIf(requireTool("qemu-system-riscv32", "qemu-system-misc")).each(BROKEN)("words %j as qemu-system-riscv32 does", async (arg) => {
    const ours = await stderrOf(process.execPath, [BIN, "run", "-S", "--blockdev", arg]);
    const theirs = await stderrOf("qemu-system-riscv32", ["-M", "virt", "-display", "none", "-S", "-blockdev", arg]);
    expect(ours.trim().replace(/^minivm: /, "")).toBe(theirs.trim().replace(/^qemu-system-riscv32: /, ""));
  });
});

describe("parseJsonValue (qobject_from_json)", () => {
  it("finishes a token and a message that the end of the input cuts short", () => {
    expect(parseJsonValue("123")).toBe(123);
    expect(parseJsonValue('{"a": [1, true]}')).toEqual({ a: [1, true] });
    expect(() => parseJsonValue("tru")).toThrow("JSON parse error, invalid keyword 'tru'");
    expect(() => parseJsonValue('{"a": 1')).toThrow("JSON parse error, premature EOI");
    expect(() => parseJsonValue("1 2")).toThrow("Expecting at most one JSON value");
  });
});
