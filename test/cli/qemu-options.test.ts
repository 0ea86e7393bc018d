// QEMU's command-line spellings that `minivm run` accepts or refuses in QEMU's words, and what
// a run leaves behind (nothing) however it ends.
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { requireTool } from "../helpers/interop.js";
import { BIN, startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const run = promisify(execFile);
let vm: VmProcess | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
});

async function fails(args: string[]): Promise<string> {
  try {
    await run(process.execPath, [BIN, ...args], { timeout: 30_000 });
  } catch (e) {
    return (e as { stderr: string }).stderr;
  }
  throw new Error(`minivm ${args.join(" ")} succeeded`);
}

describe("minivm run with QEMU's options", () => {
  it("names an unknown option as the user typed it", async () => {
    const err = await fails(["run", "-nodefaults"]);
    expect(err).toContain("unknown option '-nodefaults'");
    expect(err).not.toContain("--nodefaults");
  });

  it.each([["-M"], ["-machine"]])("refuses another machine after %s with QEMU's message", async (opt) => {
    expect(await fails(["run", opt, "sifive_u"])).toContain("unsupported machine type\nUse -machine help to list supported machines");
  });

  it("refuses -smp 2, saying SMP is not there yet", async () => {
    expect(await fails(["run", "-smp", "2"])).toMatch(/-smp 2: .*SMP is not supported yet/);
  });

  it.each([["1M"], ["2M"]])("refuses -m %s: the device tree would land on the firmware", async (size) => {
    expect(await fails(["run", "-m", size])).toMatch(new RegExp(`-m ${size} is too small: the firmware needs RAM up to 0x8`));
  });

  it("refuses -nographic and -serial stdio with -daemonize as QEMU does", async () => {
    expect(await fails(["run", "-daemonize", "-nographic"])).toContain("-nographic cannot be used with -daemonize");
    expect(await fails(["run", "-daemonize", "-serial", "stdio"])).toContain("-serial stdio: cannot use stdio with -daemonize");
  });

  it("accepts -M virt -smp 1 -display none -nographic -no-reboot -serial mon:stdio", async () => {
    vm = await startVm(["-M", "virt", "-machine", "virt", "-smp", "1", "-display", "none", "-nographic", "-no-reboot", "-serial", "mon:stdio"]);
    const c = await vm.connect();
    expect((await c.execute("query-status")).status).toBe("prelaunch");
    c.close();
  });

  it("ends the process on a reset with -no-reboot: SHUTDOWN with the reset's cause", async () => {
    vm = await startVm(["-no-reboot"]);
    const c = await vm.connect();
    const shutdown = c.waitEvent("SHUTDOWN");
    await c.execute("system_reset");
    expect((await shutdown).data).toEqual({ guest: false, reason: "host-qmp-system-reset" });
    expect(await vm.exited).toBe(0);
  });

  it("writes the console to a file with -serial file:PATH", async () => {
    vm = await startVm((dir) => ["-serial", `file:${dir}/console.log`]);
    const c = await vm.connect();
    await c.execute("cont");
    await expect.poll(() => readFileSync(join(vm?.dir ?? "", "console.log"), "utf8"), { timeout: 60_000 }).toMatch(/minivm\$ $/);
    c.close();
  });

  it("connects out as a QMP client with --qmp unix:PATH and no server=on", async () => {
    const dir = tempDir();
    const path = join(dir, "client.sock");
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(path, r));
    const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
    const p = spawn(process.execPath, [BIN, "run", "-S", "--qmp", `unix:${path}`], { stdio: ["ignore", "ignore", "pipe"] });
    const socket = await accepted;
    let text = "";
    await new Promise<void>((resolve) => socket.on("data", (d: Buffer) => (text += d.toString()).includes("\n") && resolve()));
    expect(JSON.parse(text.split("\n")[0] ?? "")).toHaveProperty("QMP.capabilities");
    socket.write('{"execute": "qmp_capabilities"}\n{"execute": "quit"}\n');
    expect(await new Promise((r) => p.on("exit", r))).toBe(0);
    server.close();
  });

  it("detaches with -daemonize once the monitor listens, keeps -pidfile while it runs and removes it at exit", async () => {
    const dir = tempDir();
    const sock = join(dir, "d.sock");
    const pidfile = join(dir, "vm.pid");
    const { stderr } = await run(process.execPath, [BIN, "run", "-daemonize", "-pidfile", pidfile, "-S", "--qmp", `unix:${sock},server=on,wait=off`], { timeout: 30_000 });
    expect(stderr).toContain("QMP monitor listening on");
    const pid = Number(readFileSync(pidfile, "utf8").trim());
    expect(() => process.kill(pid, 0)).not.toThrow();
    const c = await QmpClient.connect(`unix:${sock}`);
    expect((await c.execute("query-status")).status).toBe("prelaunch");
    await c.execute("quit");
    await c.closed();
    await expect.poll(() => existsSync(pidfile), { timeout: 30_000 }).toBe(false);
  });
});

describe("the built-in disk's copy-on-write overlay", () => {
  const leftovers = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith("minivm-"));

  async function boot(tmp: string, args: string[] = []): Promise<{ p: ReturnType<typeof spawn>; c: QmpClient; exited: Promise<unknown>; out: () => string }> {
    const sock = join(tmp, "q.sock");
    const p = spawn(process.execPath, [BIN, "run", "--qmp", `unix:${sock},server=on,wait=off`, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, TMPDIR: tmp },
    });
    let out = "";
    p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => p.on("exit", r));
    await new Promise<void>((resolve) => p.stderr?.on("data", (d: Buffer) => d.toString().includes("listening") && resolve()));
    const c = await QmpClient.connect(`unix:${sock}`);
    // The overlay exists while the VM runs.
    expect((await c.execute("query-block")) as unknown[]).not.toHaveLength(0);
    return { p, c, exited, out: () => out };
  }

  it.each([["quit"], ["SIGTERM"], ["SIGINT"]])("is gone after the VM ends by %s", async (how) => {
    const tmp = tempDir();
    const { p, c, exited } = await boot(tmp, ["-S"]);
    expect(leftovers(tmp).length).toBeGreaterThan(0);
    if (how === "quit") await c.execute("quit");
    else p.kill(how as NodeJS.Signals);
    await exited;
    expect(leftovers(tmp)).toEqual([]);
  });

  it("is gone after the guest halts", async () => {
    const tmp = tempDir();
    const { p, exited, out } = await boot(tmp);
    await expect.poll(out, { timeout: 100_000 }).toMatch(/minivm\$ $/);
    p.stdin?.write("halt\r");
    expect(await exited).toBe(0);
    expect(leftovers(tmp)).toEqual([]);
  }, 120_000);
});

describe.skipIf(!requireTool("tmux", "tmux"))("a VM started in the background of an interactive shell", () => {
  it("keeps running (no SIGTTIN) and answers QMP; its console is left to the foreground", async () => {
    const dir = tempDir();
    const sock = join(dir, "bg.sock");
    const pidfile = join(dir, "bg.pid");
    const session = `minivm-bg-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    execFileSync("tmux", ["new-session", "-d", "-s", session, "-x", "120", "-y", "30", "bash --norc -i"]);
    try {
      const cmd = `'${process.execPath}' '${BIN}' run -S -pidfile '${pidfile}' --qmp unix:${sock},server=on,wait=off &`;
      execFileSync("tmux", ["send-keys", "-t", session, cmd, "Enter"]);
      await expect.poll(() => existsSync(sock) && existsSync(pidfile), { timeout: 30_000 }).toBe(true);
      const c = await QmpClient.connect(`unix:${sock}`);
      const pid = Number(readFileSync(pidfile, "utf8"));
      // A job stopped by the terminal is in state T and answers nothing.
      expect(readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]?.[0]).not.toBe("T");
      expect((await c.execute("query-status")).status).toBe("prelaunch");
      await c.execute("quit");
      await c.closed();
    } finally {
      execFileSync("tmux", ["kill-session", "-t", session]);
    }
  });
});
