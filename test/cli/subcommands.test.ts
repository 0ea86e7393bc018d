import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { BIN, tempDir } from "../helpers/vm.js";

const run = promisify(execFile);
const minivm = (...args: string[]) => run(process.execPath, [BIN, ...args], { timeout: 60_000 });

describe("minivm sub-commands through the real binary", () => {
  it("checks minivm's own schema silently and introspects it", async () => {
    const check = await minivm("qapi", "check", "schema/qapi-schema.json");
    expect(check.stdout).toBe("");
    const introspect = await minivm("qapi", "introspect", "schema/qapi-schema.json");
    const entries = JSON.parse(introspect.stdout) as Array<{ name: string; "meta-type": string }>;
    expect(entries.some((e) => e.name === "x-oob-test" && e["meta-type"] === "command")).toBe(true);
  });

  it("refuses an invalid schema with file:line: and QEMU's words, status 1", async () => {
    const dir = tempDir();
    const file = join(dir, "bad.json");
    writeFileSync(file, "{ 'command': 'do-it', 'data': { 'x': 'Nope' } }\n");
    const err = (await minivm("qapi", "check", file).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toContain(`${file}: In command 'do-it':\n${file}:1: parameter 'x' uses unknown type 'Nope'`);
  });

  it.skipIf(!requireTool("qemu-img", "qemu-utils"))("creates a qcow2 image that qemu-img reads and checks clean", async () => {
    const dir = tempDir();
    const img = join(dir, "d.qcow2");
    await minivm("img", "create", "-f", "qcow2", img, "64M");
    const info = JSON.parse((await run("qemu-img", ["info", "--output=json", img])).stdout) as { format: string; "virtual-size": number };
    expect(info).toMatchObject({ format: "qcow2", "virtual-size": 64 << 20 });
    const check = await run("qemu-img", ["check", img]);
    expect(check.stdout).toContain("No errors were found on the image.");
  });

  it("prints its version quickly without loading the rest", async () => {
    expect((await minivm("--version")).stdout).toMatch(/^minivm \d+\.\d+\.\d+\n$/);
  });
});

describe("minivm img create --bootable", () => {
  it("makes the same disk the firmware build ships, from the same guest ELF", async () => {
    const dir = tempDir();
    const disk = join(dir, "boot.img");
    const out = await minivm("img", "create", "--bootable", "firmware/build/guest.elf", disk);
    expect(out.stdout).toContain(`Formatting '${disk}', fmt=raw size=4194304`);
    const { readFileSync } = await import("node:fs");
    expect(Buffer.compare(readFileSync(disk), readFileSync("firmware/build/disk.img"))).toBe(0);
  });

  it("refuses a file that is not an ELF", async () => {
    const dir = tempDir();
    const err = (await minivm("img", "create", "--bootable", "package.json", join(dir, "x.img")).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toContain("'package.json' is not an ELF file");
  });
});
