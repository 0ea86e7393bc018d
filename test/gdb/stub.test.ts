// The GDB stub against a real minivm process: Debian's gdb-multiarch in batch mode breaks at
// a symbol of a test ELF, steps, reads registers and memory, hits a watchpoint, asks the
// monitor for `info registers`, detaches and lets the guest finish; the same script against
// qemu-system-riscv32 -s -S gives the same answers. A protocol-level client checks what
// gdb does not show: a hit stops the VM as QEMU's does (STOP event, query-status `debug`).

import { spawn } from "node:child_process";
import { createServer, connect, type Socket } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { startVm, tempDir, type VmProcess } from "../helpers/vm.js";
import { QEMU_CPU_RVC } from "../cpu/harness.js";
import { framePacket } from "../../src/gdb/packet.js";

const ELF = new URL("../../firmware/tests/build/gdbtarget.elf", import.meta.url).pathname;
const haveGdb = requireTool("gdb-multiarch", "gdb-multiarch");
const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc");

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const a = s.address();
  const port = typeof a === "object" && a !== null ? a.port : 0;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolve once something accepts connections on the port (the stub starts with the VM). */
async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on port ${port}`);
}

const SCRIPT = (port: number) => `set pagination off
set confirm off
target remote 127.0.0.1:${port}
info registers pc
break tick
continue
info registers pc a0
stepi
p/x $pc
x/2wx &counter
p/x $sp
watch *(int *)&counter
continue
p/x $pc
info registers mstatus
p $priv
monitor info registers
delete
detach
`;

function gdbBatch(port: number, dir: string): Promise<string> {
  const script = join(dir, "session.gdb");
  writeFileSync(script, SCRIPT(port));
  return new Promise((resolve, reject) => {
    const p = spawn("gdb-multiarch", ["-nx", "-batch", "-x", script, ELF], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.on("error", reject);
    p.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** gdb's transcript with `monitor info registers` cut to the integer part both machines share. */
function comparable(transcript: string): string[] {
  return transcript
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l !== "" && !/^ f\d/.test(l) && !/^ (V|hstatus|vsstatus|hideleg|hedeleg|vstvec|vsepc|vscause|htval|mtval2) /.test(l));
}

let vm: VmProcess | null = null;
afterEach(async () => {
  await vm?.kill();
  vm = null;
});

describe.skipIf(!haveGdb)("GDB stub", () => {
  it("serves gdb-multiarch: break, step, registers, memory, watchpoint, monitor, detach", async () => {
    const port = await freePort();
    vm = await startVm(["--bios", "none", "--kernel", ELF, "-gdb", `tcp::${port}`, "--serial", "stdio"]);
    await waitForPort(port);
    const out = await gdbBatch(port, vm.dir);
    expect(out).toContain("Breakpoint 1, 0x800002a0 in tick ()");
    expect(out).toMatch(/a0\s+0x1\s+1/);
    expect(out).toContain("0x800002a4 in tick ()");
    expect(out).toContain("0x80002010:\t0x00000001\t0x00000000");
    expect(out).toContain("Old value = 1\nNew value = 2");
    expect(out).toMatch(/ pc {7}80000278/);
    expect(out).toContain("[Inferior 1 (process 1) detached]");
    // Detached, the guest runs on to the end.
    expect(await vm.exited).toBe(0);
    expect(vm.stdout()).toContain("gdbtarget done");
  }, 90_000);

  it.skipIf(!haveQemu)("gives the same answers as qemu-system-riscv32 -s -S to the same gdb script", async () => {
    const port = await freePort();
    vm = await startVm(["--bios", "none", "--kernel", ELF, "-gdb", `tcp::${port}`, "--serial", "stdio"]);
    await waitForPort(port);
    const ours = await gdbBatch(port, vm.dir);
    const qport = await freePort();
    const qemu = spawn(
      "qemu-system-riscv32",
      ["-M", "virt", "-cpu", QEMU_CPU_RVC, "-bios", "none", "-m", "128M", "-nographic", "-kernel", ELF, "-S", "-gdb", `tcp:127.0.0.1:${qport}`],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    try {
      await waitForPort(qport);
      const theirs = await gdbBatch(qport, tempDir());
      expect(comparable(ours)).toEqual(comparable(theirs));
    } finally {
      qemu.kill("SIGKILL");
    }
  }, 120_000);

  it("stops the VM on a breakpoint as QEMU does: STOP event, query-status debug, RESUME on continue", async () => {
    const port = await freePort();
    vm = await startVm(["--bios", "none", "--kernel", ELF, "-gdb", `tcp::${port}`]);
    const qmp = await vm.connect();
    await waitForPort(port);
    const gdb = await RspClient.open(port);
    expect(await gdb.request("qSupported:multiprocess+")).toContain("PacketSize=1000");
    expect(await gdb.request("?")).toBe("T05thread:p01.01;");
    expect(await gdb.request("Z0,800002a0,4")).toBe("OK");
    gdb.send("vCont;c");
    expect(await gdb.reply()).toBe("T05thread:p01.01;");
    expect((await qmp.waitEvent("STOP")).event).toBe("STOP");
    expect(await qmp.execute("query-status")).toMatchObject({ status: "debug", running: false });
    // pc = tick, and memory reads go through the same path gdb uses.
    expect((await gdb.request("p20")).toLowerCase()).toBe("a0020080");
    expect(await gdb.request("m80002010,4")).toBe("01000000");
    expect(await gdb.request("m0,4")).toBe("E14");
    expect(await gdb.request("z0,800002a0,4")).toBe("OK");
    // An access watchpoint stops before the loop's next store to counter, named as awatch.
    expect(await gdb.request("Z4,80002010,4")).toBe("OK");
    gdb.send("vCont;c");
    expect(await gdb.reply()).toBe("T05thread:p01.01;awatch:80002010;");
    expect(await gdb.request("m80002010,4")).toBe("01000000");
    expect(await gdb.request("z4,80002010,4")).toBe("OK");
    expect(await gdb.request("D")).toBe("OK");
    await qmp.waitEvent("RESUME");
    expect(await vm.exited).toBe(0);
    qmp.close();
    gdb.close();
  }, 60_000);

  it("ends minivm on k, as QEMU ends on a GDB kill", async () => {
    const port = await freePort();
    vm = await startVm(["--bios", "none", "--kernel", ELF, "-gdb", `tcp::${port}`]);
    await waitForPort(port);
    const gdb = await RspClient.open(port);
    expect(await gdb.request("qAttached")).toBe("1");
    gdb.send("k");
    expect(await vm.exited).toBe(0);
    gdb.close();
  }, 60_000);

  it("stops a running guest on Ctrl-C with T02 and status paused", async () => {
    const port = await freePort();
    // The teaching guest's firmware idles at its prompt: a running VM to interrupt.
    vm = await startVm(["-gdb", `tcp::${port}`], { paused: false });
    const qmp = await vm.connect();
    await waitForPort(port);
    const gdb = await RspClient.open(port);
    // Connecting stops a running VM (QEMU's gdb_chr_event).
    await qmp.waitEvent("STOP");
    gdb.send("c");
    await qmp.waitEvent("RESUME");
    gdb.sendRaw(Buffer.from([3]));
    expect(await gdb.reply()).toBe("T02thread:01;");
    expect(await qmp.execute("query-status")).toMatchObject({ status: "paused" });
    expect(await gdb.request("qRcmd," + Buffer.from("info status").toString("hex"))).toBe("OK");
    expect(gdb.output()).toContain("VM status: paused");
    qmp.close();
    gdb.close();
  }, 60_000);
});

/** A minimal remote-protocol client for what gdb's transcript does not show. */
class RspClient {
  private buf = "";
  private readonly waiters: (() => void)[] = [];
  private consoleOut = "";

  private constructor(private readonly socket: Socket) {
    socket.on("data", (d: Buffer) => {
      this.buf += d.toString("latin1");
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(port: number): Promise<RspClient> {
    const s = connect(port, "127.0.0.1");
    await new Promise<void>((r, j) => {
      s.once("connect", () => r());
      s.once("error", j);
    });
    return new RspClient(s);
  }

  send(data: string): void {
    this.socket.write(framePacket(data));
  }

  sendRaw(b: Buffer): void {
    this.socket.write(b);
  }

  /** The next reply packet's body; `O` console packets are collected on the way. */
  async reply(): Promise<string> {
    for (;;) {
      const m = /\$([^#]*)#[0-9a-f]{2}/.exec(this.buf);
      if (m !== null) {
        this.buf = this.buf.slice((m.index ?? 0) + m[0].length);
        this.socket.write("+");
        const body = m[1] ?? "";
        if (body.startsWith("O") && body !== "OK") {
          this.consoleOut += Buffer.from(body.slice(1), "hex").toString("latin1");
          continue;
        }
        return body;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  async request(data: string): Promise<string> {
    this.send(data);
    return this.reply();
  }

  output(): string {
    return this.consoleOut;
  }

  close(): void {
    this.socket.destroy();
  }
}
