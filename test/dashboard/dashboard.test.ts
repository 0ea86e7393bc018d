// `minivm run --dashboard`: the page in a real headless Chromium (Debian's, driven by
// playwright-core) shows the guest's console and takes typing, and its lock button makes the
// main-loop lane hold the BQL while an out-of-band request completes; without the token the
// server answers 403.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { requireTool } from "../helpers/interop.js";
import { BIN } from "../helpers/vm.js";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = requireTool(CHROMIUM, "chromium");

let proc: ChildProcess | null = null;
let ctx: BrowserContext | null = null;
let page: Page;
let url = "";
let dir = "";
let stderr = "";
let stopping = false;
let stdout = "";

/** The guest console as the page shows it (xterm's DOM rows; it renders spaces as nbsp). */
async function consoleText(): Promise<string> {
  return (await page.locator(".xterm-rows").textContent() ?? "").replace(/\u00a0/g, " ");
}

async function waitConsole(text: string): Promise<void> {
  await expect.poll(consoleText, { timeout: 60_000 }).toContain(text);
}

/** The BQL lanes the page draws as held right now. */
async function heldLanes(): Promise<string[]> {
  return ((await page.locator("#lanes").getAttribute("data-held")) ?? "").split(",");
}

/** PNG width and height from its IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe.skipIf(!haveChromium)("minivm run --dashboard in a real browser", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "minivm-dashboard-test-"));
    proc = spawn(process.execPath, [BIN, "run", "--dashboard", "127.0.0.1:0"], { stdio: ["pipe", "pipe", "pipe"] });
    proc.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    url = await new Promise<string>((resolve, reject) => {
      proc?.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /dashboard at (http:\/\/\S+)/.exec(stderr);
        if (m) resolve(m[1] as string);
      });
      proc?.on("exit", (code) => {
        if (url === "") reject(new Error(`minivm exited (${code}) before serving: ${stderr}`));
        else if (!stopping) process.stderr.write(`minivm exited early (${code}): ${stderr}\n`);
      });
    });
    ctx = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    // A loaded 2-core machine boots the guest slowly; nothing here waits on a clock otherwise.
    page.setDefaultTimeout(60_000);
    await page.goto(url);
  });

  afterAll(async () => {
    await ctx?.close();
    stopping = true;
    if (proc !== null && proc.exitCode === null) {
      const exited = new Promise((resolve) => proc?.on("exit", resolve));
      proc.kill("SIGKILL");
      await exited;
    }
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("prints a loopback URL with a token, and the chosen port", () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*\/\?token=[0-9a-f]{32}$/);
  });

  it("shows the guest's console, and typing on the page reaches the guest", async () => {
    await waitConsole("minivm$ ");
    await page.locator("#console").click();
    await page.keyboard.type("help");
    await page.keyboard.press("Enter");
    await waitConsole("help: commands");
    expect(await consoleText()).toContain("this list");
    // The console on stdio shows the same guest.
    await expect.poll(() => stdout, { timeout: 60_000 }).toContain("help: commands");
  });

  it("holds the main-loop lane while an out-of-band request overtakes the locked one", async () => {
    const lanes = page.locator("#lanes");
    await page.locator("#lock").click();
    // The lock's in-band x-oob-test blocks the main loop with the BQL held: its lane stays open.
    await expect.poll(heldLanes, { timeout: 60_000 }).toContain("main-loop");
    await expect.poll(() => page.locator("#bql-holder").textContent(), { timeout: 60_000 }).toBe("main-loop");
    await page.locator("#oob-query").click();
    const oob = page.locator('#qmp-log li[data-command="x-query-bql"]');
    await oob.and(page.locator('[data-done="return"]')).waitFor();
    expect(await oob.locator(".sent").textContent()).toBe('{"exec-oob":"x-query-bql"}');
    expect(await oob.locator(".reply").textContent()).toContain('"holder":"main-loop"');
    // Answered while the lock was still held: an overtake, and the lane was still held.
    await expect.poll(async () => Number(await lanes.getAttribute("data-overtakes")), { timeout: 60_000 }).toBeGreaterThanOrEqual(1);
    expect(await heldLanes()).toContain("main-loop");
    const lock = page.locator('#qmp-log li[data-command="x-oob-test"]').last();
    expect(await lock.getAttribute("data-done")).toBeNull();

    await page.locator("#unlock").click();
    await page.locator('#qmp-log li[data-command="x-oob-test"][data-done="return"]').nth(1).waitFor();
    await expect.poll(heldLanes, { timeout: 60_000 }).not.toContain("main-loop");
    expect(await lock.locator(".sent").textContent()).toBe('{"execute":"x-oob-test","arguments":{"lock":true}}');
    expect(await lock.locator(".reply").textContent()).toBe('{"return":{}}');
  });

  it("refuses requests and WebSockets without the token", async () => {
    const base = new URL(url);
    expect((await fetch(`${base.origin}/`)).status).toBe(403);
    expect((await fetch(`${base.origin}/vendor/xterm.js?token=0000`)).status).toBe(403);
    expect((await fetch(`${base.origin}/vendor/xterm.js${base.search}`)).status).toBe(200);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://${base.host}/ws`);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
      ws.on("error", () => undefined);
    });
    expect(status).toBe(403);
  });

  it("takes a screenshot of the whole page for docs/dashboard.md", async () => {
    const file = join(dir, "dashboard.png");
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    const size = pngSize(png);
    expect(size.width).toBe(1400);
    expect(size.height).toBeGreaterThanOrEqual(1000);
    expect(png.length).toBeGreaterThan(30_000);
    // MINIVM_UPDATE_SCREENSHOT=1 refreshes the picture the docs show.
    if (process.env.MINIVM_UPDATE_SCREENSHOT === "1") copyFileSync(file, join(import.meta.dirname, "../../docs/dashboard.png"));
  });
});
