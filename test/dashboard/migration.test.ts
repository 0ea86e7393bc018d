// The dashboard's teaching moments for block latency and migration, in a real headless Chromium
// (Debian's, driven by playwright-core) watching two minivm processes with a dashboard each: the
// histogram form and the guest's `disk write`, a precopy started from the page, the postcopy
// switch with the destination's page map showing requested and missing pages, and a link cut and
// recovered from the destination's page with the out-of-band buttons. Each moment is a
// screenshot for the tutorials in docs/ (MINIVM_UPDATE_SCREENSHOT=1 copies them there).
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { diskCopy, removeDiskCopies } from "../firmware/console.js";
import { requireTool } from "../helpers/interop.js";
import { BIN } from "../helpers/vm.js";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = requireTool(CHROMIUM, "chromium");

interface Vm {
  proc: ChildProcess;
  url: string;
  stderr: string;
  qmp: QmpClient;
  page: Page;
}

let dir = "";
let ctx: BrowserContext | null = null;
const vms: Vm[] = [];
let src!: Vm;
let dst!: Vm;

async function start(name: string, args: string[]): Promise<Omit<Vm, "page">> {
  const sock = join(dir, `${name}.sock`);
  const proc = spawn(process.execPath, [BIN, "run", ...args, "--qmp", `unix:${sock},server=on,wait=off`, "--dashboard", "127.0.0.1:0"], { stdio: ["pipe", "pipe", "pipe"] });
  proc.stdout?.resume();
  const vm = { proc, url: "", stderr: "" };
  await new Promise<void>((resolve, reject) => {
    proc.stderr?.on("data", (d: Buffer) => {
      vm.stderr += d.toString();
      const m = /dashboard at (http:\/\/\S+)/.exec(vm.stderr);
      if (m && /QMP monitor listening/.test(vm.stderr)) {
        vm.url = m[1] as string;
        resolve();
      }
    });
    proc.on("exit", (code) => reject(new Error(`${name} exited (${code}): ${vm.stderr}`)));
  });
  return { ...vm, qmp: await QmpClient.connect(`unix:${sock}`) };
}

/** The guest console as a page shows it (xterm's DOM rows; it renders spaces as nbsp). */
async function consoleText(page: Page): Promise<string> {
  return ((await page.locator(".xterm-rows").textContent()) ?? "").replace(/\u00a0/g, " ");
}

async function typeLine(page: Page, line: string, until: string): Promise<void> {
  await page.locator("#console").click();
  await page.keyboard.type(line);
  if (line !== "x") await page.keyboard.press("Enter");
  await expect.poll(() => consoleText(page), { timeout: 60_000 }).toContain(until);
}

const num = async (page: Page, selector: string, attr: string): Promise<number> => Number(await page.locator(selector).getAttribute(attr));

/** A logged exchange: wait for its reply, return what the page shows was sent and came back. */
async function exchange(page: Page, command: string): Promise<{ sent: string; reply: string }> {
  const li = page.locator(`#qmp-log li[data-command="${command}"]`).first();
  await li.and(page.locator("[data-done]")).waitFor();
  return { sent: (await li.locator(".sent").textContent()) ?? "", reply: (await li.locator(".reply").textContent()) ?? "" };
}

async function freeForm(page: Page, command: string, args: Record<string, unknown>): Promise<{ sent: string; reply: string }> {
  await page.locator("#free-cmd").fill(command);
  await page.locator("#free-args").fill(JSON.stringify(args));
  await page.locator('#free button[type="submit"]').click();
  return exchange(page, command);
}

/** A full-page PNG of `page`, checked for size; MINIVM_UPDATE_SCREENSHOT=1 puts it in docs/. */
async function screenshot(page: Page, name: string): Promise<void> {
  const file = join(dir, name);
  await page.screenshot({ path: file, fullPage: true });
  const png = readFileSync(file);
  expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
  expect(png.readUInt32BE(16)).toBe(1400);
  expect(png.length).toBeGreaterThan(30_000);
  if (process.env.MINIVM_UPDATE_SCREENSHOT === "1") copyFileSync(file, join(import.meta.dirname, "../../docs", name));
}

const caps = { capabilities: (["postcopy-ram", "events"] as const).map((capability) => ({ capability, state: true })) };

describe.skipIf(!haveChromium)("the dashboard's block and migration moments in a real browser", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "minivm-dashboard-mig-"));
    const disk = diskCopy();
    const d = await start("dst", [disk, "--incoming", `unix:${join(dir, "mig.sock")}`]);
    const s = await start("src", [disk]);
    ctx = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const open = async (url: string): Promise<Page> => {
      const page = await (ctx as BrowserContext).newPage();
      page.setDefaultTimeout(60_000);
      await page.goto(url);
      return page;
    };
    src = { ...s, page: await open(s.url) };
    dst = { ...d, page: await open(d.url) };
    vms.push(src, dst);
    for (const vm of vms) await vm.qmp.execute("migrate-set-capabilities", caps);
  }, 120_000);

  afterAll(async () => {
    await ctx?.close();
    for (const vm of vms) {
      vm.qmp.close();
      if (vm.proc.exitCode === null) {
        const exited = new Promise((resolve) => vm.proc.on("exit", resolve));
        vm.proc.kill("SIGKILL");
        await exited;
      }
    }
    removeDiskCopies();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("sets histogram boundaries from the form and draws the write bins after the guest's disk write", async () => {
    const page = src.page;
    await expect.poll(() => consoleText(page), { timeout: 60_000 }).toContain("minivm$ ");
    await expect.poll(() => page.locator("#hist-id").inputValue(), { timeout: 60_000 }).not.toBe("");
    await page.locator("#hist-bounds").fill("10000,100000,1000000,10000000");
    await page.locator('#hist-form button[type="submit"]').click();
    const set = await exchange(page, "block-latency-histogram-set");
    expect(set.sent).toMatch(/^\{"execute":"block-latency-histogram-set","arguments":\{"id":"[^"]+","boundaries":\[10000,100000,1000000,10000000\]\}\}$/);
    expect(set.reply).toBe('{"return":{}}');
    await typeLine(page, "disk write 2", "disk write: OK");
    const write = page.locator('#histograms .device[data-device$=" write"]').first();
    await expect.poll(() => write.textContent(), { timeout: 60_000 }).toMatch(/: [1-9]\d* operations$/);
    expect(await write.locator("canvas").count()).toBeGreaterThan(0);
    await screenshot(page, "demo-histogram.png");
  });

  it("starts a precopy from the page and shows it active over a page map with dirty pages", async () => {
    const page = src.page;
    await typeLine(page, "dirty 16 16", "until a key is pressed");
    // Slow on purpose: precopy still running when the next test switches to postcopy, and
    // postcopy throttled so hard that it is still running when the link is cut.
    await src.qmp.execute("migrate-set-parameters", { "max-bandwidth": 4 << 20, "max-postcopy-bandwidth": 64 << 10 });
    await page.locator("#migrate-uri").fill(`unix:${join(dir, "mig.sock")}`);
    await page.locator('button[data-execute="migrate"]').click();
    const m = await exchange(page, "migrate");
    expect(m.sent).toBe(`{"execute":"migrate","arguments":{"uri":"unix:${join(dir, "mig.sock")}"}}`);
    expect(m.reply).toBe('{"return":{}}');
    await expect.poll(() => page.locator("#migration").getAttribute("data-status"), { timeout: 60_000 }).toBe("active");
    await expect.poll(() => page.locator("#mig-live").getAttribute("data-outgoing"), { timeout: 60_000 }).toBe("active");
    await expect.poll(() => num(page, "#pagemap", "data-dirty-pages"), { timeout: 60_000 }).toBeGreaterThan(0);
    await screenshot(page, "demo-precopy.png");
  });

  it("switches to postcopy from the page; the destination's map shows pages missing and pages requested", async () => {
    await src.page.locator('button[data-execute="migrate-start-postcopy"]').click();
    expect((await exchange(src.page, "migrate-start-postcopy")).reply).toBe('{"return":{}}');
    const page = dst.page;
    await expect.poll(() => page.locator("#mig-live").getAttribute("data-incoming"), { timeout: 60_000 }).toBe("postcopy-active");
    // A good part of the guest's 4096-page sweep, so that the picture shows the band of them.
    await expect.poll(() => num(page, "#pagemap", "data-requested-pages"), { timeout: 60_000 }).toBeGreaterThan(1000);
    await expect.poll(() => num(page, "#pagemap", "data-absent-pages"), { timeout: 60_000 }).toBeGreaterThan(0);
    expect(await num(page, "#pagemap", "data-present-pages")).toBeGreaterThan(0);
    await screenshot(page, "demo-postcopy.png");
  });

  it("cuts the link and recovers it with the destination's out-of-band buttons; the guest loses no page", async () => {
    const page = dst.page;
    await page.locator('button[data-execute="migrate-pause"]').click();
    expect(await exchange(page, "migrate-pause")).toEqual({ sent: '{"exec-oob":"migrate-pause"}', reply: '{"return":{}}' });
    await expect.poll(() => page.locator("#mig-live").getAttribute("data-incoming"), { timeout: 60_000 }).toBe("postcopy-paused");
    await expect.poll(() => src.page.locator("#mig-live").getAttribute("data-outgoing"), { timeout: 60_000 }).toBe("postcopy-paused");
    // The guest touches a page that cannot come: its vCPU waits holding the BQL, which the
    // header reads from the lock's shared bookkeeping while in-band QMP there is stuck. (The
    // page it waits on shows as requested only when its request left before the cut: one
    // faulted during the pause is asked for after the recovery, and traced then.)
    await expect.poll(() => page.locator("#bql-holder").textContent(), { timeout: 60_000 }).toBe("vcpu0");
    expect(await num(page, "#pagemap", "data-absent-pages")).toBeGreaterThan(0);
    await screenshot(page, "demo-recovery.png");

    const again = `unix:${join(dir, "mig2.sock")}`;
    await page.locator("#migrate-uri").fill(again);
    await page.locator('button[data-execute="migrate-recover"]').click();
    expect(await exchange(page, "migrate-recover")).toEqual({ sent: `{"exec-oob":"migrate-recover","arguments":{"uri":"${again}"}}`, reply: '{"return":{}}' });
    expect((await freeForm(src.page, "migrate-set-parameters", { "max-postcopy-bandwidth": 0 })).reply).toBe('{"return":{}}');
    const resume = await freeForm(src.page, "migrate", { uri: again, resume: true });
    expect(resume).toEqual({ sent: `{"execute":"migrate","arguments":{"uri":"${again}","resume":true}}`, reply: '{"return":{}}' });
    await expect.poll(() => src.page.locator("#mig-live").getAttribute("data-outgoing"), { timeout: 60_000 }).toBe("completed");
    await expect.poll(() => page.locator("#mig-live").getAttribute("data-incoming"), { timeout: 60_000 }).toBe("completed");
    await expect.poll(() => num(page, "#pagemap", "data-absent-pages"), { timeout: 60_000 }).toBe(0);
    expect(await num(page, "#pagemap", "data-waiting-pages")).toBe(0);
    await typeLine(page, "x", "dirty: stopped");
    await typeLine(page, "check", "check: OK pages=4096");
  });
});
