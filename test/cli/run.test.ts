import { execFile, spawn } from "node:child_process";
import { statSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { BIN, startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const run = promisify(execFile);
let vm: VmProcess | undefined;
afterEach(async () => {
  await vm?.kill();
  vm = undefined;
});

async function fails(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [BIN, ...args], { timeout: 30_000 });
  } catch (e) {
    const err = e as { code: number; stderr: string };
    return { code: err.code, stderr: err.stderr };
  }
  throw new Error(`minivm ${args.join(" ")} succeeded`);
}

describe("minivm run", () => {
  it("quits on `quit`: SHUTDOWN host-qmp-quit, then the reply, then end of stream, exit status 0", async () => {
    vm = await startVm();
    const c = await vm.connect();
    const lines: string[] = [];
    c.onLine = (l) => lines.push(l);
    await c.execute("quit");
    await c.closed();
    expect(await vm.exited).toBe(0);
    expect(lines[0]).toMatch(/"event": "SHUTDOWN", "data": \{"guest": false, "reason": "host-qmp-quit"\}/);
    expect(lines[1]).toMatch(/^\{"return": \{\}, "id": "minivm-\d+"\}$/);
  });

  it("shuts down cleanly on SIGTERM, telling clients the cause was a host signal", async () => {
    vm = await startVm();
    const c = await vm.connect();
    const shutdown = c.waitEvent("SHUTDOWN");
    vm.proc.kill("SIGTERM");
    expect((await shutdown).data).toEqual({ guest: false, reason: "host-signal" });
    expect(await vm.exited).toBe(0);
  });

  it("waits for a client before starting when a monitor says wait=on", async () => {
    const dir = tempDir();
    const path = join(dir, "w.sock");
    const p = spawn(process.execPath, [BIN, "run", "--qmp", `unix:${path},server=on,wait=on`], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    await new Promise<void>((resolve) => p.stderr.on("data", (d: Buffer) => (err += d.toString()).includes("waiting for a QMP client") && resolve()));
    const c = await QmpClient.connect(`unix:${path}`);
    // Started without -S, the VM runs as soon as the first client is there.
    expect((await c.execute("query-status")).status).toBe("running");
    await c.execute("quit");
    expect(await new Promise((r) => p.on("exit", r))).toBe(0);
  });

  it("puts the guest's console on a private unix socket with --serial unix:PATH", async () => {
    vm = await startVm((dir) => ["--serial", `unix:${dir}/serial.sock`]);
    const path = join(vm.dir, "serial.sock");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const s = net.connect(path);
    let text = "";
    s.on("data", (d: Buffer) => (text += d.toString()));
    await new Promise((r) => s.once("connect", r));
    const c = await vm.connect();
    await c.execute("cont");
    await expect.poll(() => text, { timeout: 60_000 }).toMatch(/minivm\$ $/);
    s.write("uptime\r");
    await expect.poll(() => text, { timeout: 60_000 }).toMatch(/uptime: \d+\.\d+ s/);
    s.write("halt\r");
    expect(await vm.exited).toBe(0);
  });

  it("pairs -chardev with -mon in QEMU's spelling", async () => {
    vm = await startVm((dir) => ["-chardev", `socket,id=qmp0,path=${dir}/c.sock,server=on,wait=off`, "-mon", "chardev=qmp0,mode=control"], { noDefaultQmp: true });
    const c = await vm.connect({}, `unix:${vm.dir}/c.sock`);
    expect((await c.execute("query-status")).status).toBe("prelaunch");
    c.close();
  });

  it.each([
    [["run", "--qmp", "serial:/dev/ttyS0"], /is not a QMP address: use unix:PATH or tcp:HOST:PORT/],
    [["run", "--qmp", "unix:/nonexistent-dir/q.sock,server=on,wait=off"], /Failed to bind socket to \/nonexistent-dir\/q.sock: No such file or directory/],
    [["run", "--qmp", "tcp:127.0.0.1:99999"], /invalid TCP port '99999'/],
    [["run", "-mon", "chardev=nope,mode=control"], /chardev "nope" not found/],
    [["run", "-chardev", "socket,id=a,path=/tmp/x.sock", "-mon", "chardev=a,mode=readline"], /-mon mode 'readline' is not supported/],
    [["run", "--qmp", "unix:/tmp/x.sock,queue-full=maybe"], /Parameter 'queue-full' expects 'suspend' or 'drop'/],
    [["run", "--qmp", "unix:/tmp/x.sock,bogus=1"], /Invalid parameter 'bogus'/],
    [["run", "-m", "12Q"], /Parameter 'size' expects a size: '12Q'/],
    [["run", "--serial", "pty"], /'pty' is not a valid char driver/],
    [["run", "--kernel", "/nonexistent.elf", "--bios", "none"], /could not load kernel '\/nonexistent.elf'/],
    [["run", "--bogus"], /unknown option '--bogus'/],
    [["frobnicate"], /unknown command 'frobnicate'/],
  ])("refuses %j with a clear message and status 1", async (args, message) => {
    const r = await fails(args);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });
});
