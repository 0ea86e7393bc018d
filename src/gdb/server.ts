// The GDB stub's socket, in the core thread beside the hart (QEMU's `-gdb tcp::PORT`, `-s`):
// the CPU state it reads and writes belongs to this thread, so every packet is handled
// between slices with the BQL held, and no state is copied to another thread. A Ctrl-C byte
// arrives on this thread's event loop, which runs between slices (at most one slice late).

import { createServer, type Server, type Socket } from "node:net";
import type { Machine } from "../core/machine.js";
import { readCsr, writeCsr } from "../cpu/csr.js";
import { CSR_BASE, REG_PC, REG_PRIV } from "./target-xml.js";
import { GdbStub, type GdbTarget } from "./stub.js";
import type { DebugWatchHit } from "../core/machine.js";

/** QEMU's DEFAULT_GDBSTUB_PORT, what `-s` means. */
export const DEFAULT_GDB_PORT = 1234;

/** Parse QEMU's `-gdb` device: `tcp::PORT`, `tcp:HOST:PORT` (options after a comma ignored). */
export function parseGdbDevice(spec: string): { host: string; port: number } {
  const m = /^tcp:([^:,]*):(\d+)(,.*)?$/.exec(spec);
  if (m === null) throw new Error(`-gdb ${spec}: minivm's GDB stub listens on tcp:[HOST]:PORT (for example tcp::1234)`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`-gdb ${spec}: port ${port} is out of range`);
  // An empty host is QEMU's "all interfaces"; minivm keeps a debugger on loopback unless told.
  return { host: m[1] === "" ? "127.0.0.1" : (m[1] ?? "127.0.0.1"), port };
}

export interface GdbServerDeps {
  machine: Machine;
  withLock<T>(f: () => T): T;
  isRunning(): boolean;
  resume(): void;
  pause(): void;
  hmp(command: string): Promise<string>;
  kill(): void;
}

export class GdbServer {
  private readonly server: Server;
  private client: { socket: Socket; stub: GdbStub } | null = null;
  /** Connections that wait for the current debugger to leave (QEMU serves one at a time). */
  private readonly waiting: Socket[] = [];

  private constructor(private readonly deps: GdbServerDeps) {
    this.server = createServer((socket) => this.accept(socket));
  }

  static async listen(spec: string, deps: GdbServerDeps): Promise<GdbServer> {
    const { host, port } = parseGdbDevice(spec);
    const s = new GdbServer(deps);
    await new Promise<void>((resolve, reject) => {
      s.server.once("error", (e: Error) => reject(new Error(`-gdb ${spec}: ${e.message}`)));
      s.server.listen(port, host, () => resolve());
    });
    return s;
  }

  private accept(socket: Socket): void {
    if (this.client !== null) {
      socket.pause();
      this.waiting.push(socket);
      socket.once("close", () => {
        const i = this.waiting.indexOf(socket);
        if (i >= 0) this.waiting.splice(i, 1);
      });
      return;
    }
    socket.setNoDelay(true);
    const d = this.deps;
    const stub = new GdbStub(this.target(), (b) => socket.write(b), (f) => d.withLock(f));
    this.client = { socket, stub };
    d.withLock(() => {
      d.machine.debug = stub;
      // Connecting stops a running VM, as QEMU's gdb_chr_event(CHR_EVENT_OPENED) does.
      if (d.isRunning()) d.pause();
    });
    socket.on("data", (b: Buffer) => stub.receive(b));
    const gone = () => {
      if (this.client?.stub !== stub) return;
      this.client = null;
      stub.closed();
      d.withLock(() => {
        if (d.machine.debug === stub) d.machine.debug = null;
      });
      const next = this.waiting.shift();
      if (next !== undefined) {
        this.accept(next);
        next.resume();
      }
    };
    socket.on("close", gone);
    socket.on("error", gone);
  }

  private target(): GdbTarget {
    const d = this.deps;
    const m = d.machine;
    const cpu = m.cpu;
    return {
      readReg: (n) => {
        if (n >= 0 && n < 32) return n === 0 ? 0 : cpu.x[n];
        if (n === REG_PC) return cpu.pc;
        if (n === REG_PRIV) return cpu.priv;
        if (n >= CSR_BASE && n < CSR_BASE + 4096) return readCsr(cpu, n - CSR_BASE);
        return null;
      },
      writeReg: (n, v) => {
        if (n >= 0 && n < 32) {
          if (n !== 0) cpu.x[n] = v;
          return true;
        }
        if (n === REG_PC) {
          cpu.pc = v;
          return true;
        }
        if (n === REG_PRIV) {
          // QEMU's riscv_gdb_set_virtual: the privilege changes, translations are forgotten.
          cpu.priv = (v & 3) === 2 ? 0 : v & 3;
          cpu.flushTlb();
          return true;
        }
        if (n >= CSR_BASE && n < CSR_BASE + 4096) return readCsr(cpu, n - CSR_BASE) !== null && writeCsr(cpu, n - CSR_BASE, v);
        return false;
      },
      readMem: (addr, len) => {
        const out = new Uint8Array(len);
        for (let i = 0; i < len; i++) {
          const pa = m.virtToPhys((addr + i) >>> 0);
          if (pa === null) return null;
          const v = m.readPhys(pa, 1);
          if (v === null) return null;
          out[i] = v;
        }
        return out;
      },
      writeMem: (addr, bytes) => {
        for (let i = 0; i < bytes.length; i++) {
          const pa = m.virtToPhys((addr + i) >>> 0);
          // RAM's DMA path marks the page dirty and tells the code cache, as a debugger write must.
          if (pa === null || !m.ram.dmaWrite(pa, bytes.subarray(i, i + 1))) return false;
        }
        return true;
      },
      isRunning: () => d.isRunning(),
      resume: () => d.resume(),
      pause: () => d.pause(),
      hmp: (c) => d.hmp(c),
      kill: () => d.kill(),
    };
  }

  /** The hart stopped on a breakpoint, watchpoint or step. */
  debugStop(watch: DebugWatchHit | null): void {
    this.client?.stub.stopped(watch);
  }

  /** The VM stopped for another reason (QMP `stop`, say). */
  vmStopped(): void {
    this.client?.stub.paused();
  }

  exited(status: number): void {
    if (this.client === null) return;
    this.client.stub.exited(status);
    this.client.socket.end();
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === "object" && a !== null ? a.port : 0;
  }
}
