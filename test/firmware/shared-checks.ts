// Guest behaviours checked the same way on QEMU and on minivm: one body, two machines.
import { expect } from "vitest";
import { PROMPT, type SerialConsole } from "./console.js";

/** `dirty 4 8 1` keeps to 8 MiB/s, stops after a second, and leaves a pattern `check` accepts. */
export async function expectPacedDirty(c: SerialConsole): Promise<void> {
  const out = await c.command("dirty 4 8 1", 60_000);
  expect(out).toContain("dirty: 4 MiB (1024 pages) at 0x81000000, 8 MiB/s, for 1 s or until a key is pressed");
  const m = /dirty: stopped sweeps=(\d+) pages=(\d+) ms=(\d+) mib_s=(\d+)/.exec(out);
  expect(m).not.toBeNull();
  const [pages, ms] = [Number(m?.[2]), Number(m?.[3])];
  expect(ms).toBeGreaterThanOrEqual(1000);
  // Pacing is checked every 64 pages (256 KiB), so at most that much ahead of 8 MiB/s.
  expect(pages * 4096).toBeLessThanOrEqual((8 * 1024 * 1024 * ms) / 1000 + 64 * 4096);
  expect(await c.command("check")).toMatch(/check: OK pages=1024/);
}

/** What `disk write` wrote is still there after the guest reboots itself. */
export async function expectDiskSurvivesReboot(c: SerialConsole): Promise<void> {
  expect(await c.command("disk write 2 0xfeed")).toContain("disk write: OK 2 MiB pattern=0x0000feed");
  c.type("reboot\n");
  await c.waitFor("minivm-sbi: reboot");
  await c.waitFor(PROMPT, 60_000);
  expect(await c.command("disk verify 2 0xfeed")).toContain("disk verify: OK 2 MiB pattern=0x0000feed");
}
