import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startVm, tempDir, type VmProcess } from "../helpers/vm.js";
import { requireTool } from "../helpers/interop.js";

const GO_QEMU = "/usr/share/gocode/src/github.com/digitalocean/go-qemu/qmp";
const haveGo = requireTool("go", "golang-go") && requireTool(GO_QEMU, "golang-github-digitalocean-go-qemu-dev");

let vm: VmProcess;
let client: string;

describe.skipIf(!haveGo)("go-qemu (Debian's digitalocean/go-qemu) against minivm", () => {
  beforeAll(async () => {
    const out = tempDir("minivm-go-");
    client = join(out, "goclient");
    // GOPATH mode against Debian's packaged sources: no module download, no network.
    execFileSync("go", ["build", "-o", client, "."], {
      cwd: join(import.meta.dirname, "goclient"),
      env: { ...process.env, GO111MODULE: "off", GOPATH: "/usr/share/gocode", GOCACHE: join(out, "cache"), GOFLAGS: "" },
      stdio: "pipe",
    });
    vm = await startVm(["--name", "go-test"]);
  }, 180_000);
  afterAll(async () => {
    await vm?.kill();
  });

  it("connects, runs a raw command and typed query-status, HMP, and sees an unknown command fail", () => {
    expect(existsSync(client)).toBe(true);
    const out = execFileSync(client, [vm.qmpPath], { encoding: "utf8", timeout: 60_000 });
    const steps = out.trim().split("\n").map((l) => JSON.parse(l) as { step: string; value?: unknown; error?: string });
    const by = new Map(steps.map((s) => [s.step, s]));
    expect(by.get("connect")?.value).toBe("ok");
    expect(by.get("raw query-name")?.value).toEqual({ return: { name: "go-test" } });
    expect(by.get("query-status")?.value).toEqual({ running: false, status: "prelaunch" });
    expect(by.get("hmp info status")?.value).toBe("VM status: paused (prelaunch)\r\n");
    expect(by.get("unknown command")?.error).toBe("The command nosuch has not been found");
  });
});
