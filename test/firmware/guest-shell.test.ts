// The teaching guest's shell checks what it is typed: numbers in range (no wrap-around),
// no extra arguments, and a key stops any long command.
import { afterEach, describe, expect, it } from "vitest";
import { BIN } from "../helpers/vm.js";
import { PROMPT, SBI_ELF, SerialConsole, diskCopy, removeDiskCopies } from "./console.js";

let vm: SerialConsole | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
  removeDiskCopies();
});

async function boot(): Promise<SerialConsole> {
  const c = new SerialConsole(process.execPath, [BIN, "run", "--bios", SBI_ELF, diskCopy()]);
  vm = c;
  await c.waitFor(PROMPT, 60_000);
  return c;
}

describe("the teaching guest's shell", () => {
  it("refuses numbers out of range instead of wrapping them, and extra arguments", async () => {
    const c = await boot();
    // 4294967297 = 2^32 + 1 used to wrap to 1 and write 1 MiB.
    expect(await c.command("disk write 4294967297")).toContain("disk: MIB must be a number from 1 to 2, not '4294967297'");
    expect(await c.command("disk write 3")).toContain("disk: MIB must be a number from 1 to 2, not '3'");
    expect(await c.command("disk verify 1 0x100000000")).toContain("disk: PATTERN must be a number from 0 to 4294967295, not '0x100000000'");
    expect(await c.command("bench cpu 99999999999")).toContain("bench cpu: ITERATIONS must be a number from 1 to 4294967295, not '99999999999'");
    expect(await c.command("bench disk 0")).toContain("bench disk: MIB must be a number from 1 to 2, not '0'");
    expect(await c.command("dirty 1 4294967296")).toContain("dirty: RATE_MIB_S must be a number from 0 to 1000000, not '4294967296'");
    expect(await c.command("dirty 1 0 1 extra")).toContain("dirty: too many arguments; usage: dirty MIB");
    expect(await c.command("halt now")).toContain("halt: too many arguments; usage: halt");
    expect(await c.command("bench cpu 10 20")).toContain("bench: too many arguments");
    // Nothing above ran: the disk was never written and the machine is still up.
    expect(await c.command("uptime")).toMatch(/uptime: \d+\.\d{3} s/);
  });

  it("stops a long bench cpu when a key is pressed, and still gives QEMU's checksum for a whole run", async () => {
    const c = await boot();
    c.type("bench cpu 4000000000\n");
    await c.waitFor("bench cpu 4000000000\n");
    c.type("x");
    expect(await c.waitFor(PROMPT, 60_000)).toMatch(/bench cpu: stopped by a key after \d+ iterations\n/);
    expect(await c.command("bench cpu 100000")).toMatch(/bench cpu: iterations=100000 ms=\d+ us=\d+ checksum=0x76ac9c6d\n/);
  });
});
