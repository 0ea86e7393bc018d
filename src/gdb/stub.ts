// The GDB remote stub (gdb.texinfo "Remote Protocol"), answering as QEMU 7.2's gdbstub does
// for one riscv32 hart in system mode (see /work/shared/reference/gdb-remote.md): registers,
// memory through the guest MMU, breakpoints and watchpoints kept on the host side (guest RAM
// is never patched), continue/step/vCont, Ctrl-C, qRcmd to HMP, detach and kill. It knows
// nothing of sockets or threads: server.ts feeds it bytes and gives it a GdbTarget.

import type { DebugControl, DebugWatchHit } from "../core/machine.js";
import { expandCompressed } from "../cpu/rvc.js";
import { framePacket, PacketReader, parseRegHex, regHex, toHex } from "./packet.js";
import { targetAnnexes } from "./target-xml.js";
import type { Cpu } from "../cpu/cpu.js";

/** What the stub needs from the VM; every call is made with the BQL held. */
export interface GdbTarget {
  /** GDB register n (target-xml.ts numbering), or null if the hart has no such register. */
  readReg(n: number): number | null;
  writeReg(n: number, value: number): boolean;
  /** Guest-virtual memory as the hart sees it now (current privilege, satp); null = unmapped. */
  readMem(addr: number, len: number): Uint8Array | null;
  writeMem(addr: number, bytes: Uint8Array): boolean;
  isRunning(): boolean;
  /** Start the VM (vm_start); the debug control says whether to step. */
  resume(): void;
  /** QEMU's vm_stop(RUN_STATE_PAUSED) for Ctrl-C and connect. */
  pause(): void;
  /** HMP for qRcmd (`monitor info registers`). */
  hmp(command: string): Promise<string>;
  /** `k`: end the VM process. */
  kill(): void;
}

const THREAD_MP = "p01.01";
const THREAD = "01";

/** GDB's signal numbers in stop replies (gdb/signals.def): TRAP for debug, INT for a pause. */
const SIGTRAP = 5;
const SIGINT = 2;

interface Watchpoint {
  addr: number;
  len: number;
  type: 2 | 3 | 4;
}

export class GdbStub implements DebugControl {
  private readonly reader = new PacketReader();
  private readonly annexes = targetAnnexes();
  private readonly breakpoints = new Set<number>();
  private readonly watchpoints: Watchpoint[] = [];
  private multiprocess = false;
  /** GDB is waiting for a stop reply (after c, s, vCont). */
  private waiting = false;
  private lastPacket: Buffer | null = null;
  step = false;
  skipOnce = false;
  /** Replies go through here in order, even when one (qRcmd) has to wait. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly target: GdbTarget,
    private readonly send: (bytes: Buffer) => void,
    private readonly withLock: <T>(f: () => T) => T,
  ) {}

  // --- DebugControl, called by Machine.runSlice before each instruction -------------------

  active(): boolean {
    return this.step || this.breakpoints.size > 0 || this.watchpoints.length > 0;
  }

  breakpoint(pc: number): boolean {
    return this.breakpoints.has(pc);
  }

  watch(cpu: Cpu): DebugWatchHit | null {
    if (this.watchpoints.length === 0) return null;
    const access = dataAccess(cpu, this.target);
    if (access === null) return null;
    for (const w of this.watchpoints) {
      const overlaps = access.addr < w.addr + w.len && w.addr < access.addr + access.size;
      if (!overlaps) continue;
      if (w.type === 4 || (w.type === 2 && access.write) || (w.type === 3 && access.read)) return { addr: w.addr, type: w.type };
    }
    return null;
  }

  // --- events from the VM -----------------------------------------------------------------

  /** A breakpoint, watchpoint or step stopped the VM (runstate debug). */
  stopped(watch: DebugWatchHit | null): void {
    this.step = false;
    if (!this.waiting) return;
    this.waiting = false;
    const kind = watch === null ? "" : `${watch.type === 2 ? "watch" : watch.type === 3 ? "rwatch" : "awatch"}:${(watch.addr >>> 0).toString(16)};`;
    this.reply(`T${hex2(SIGTRAP)}thread:${this.thread()};${kind}`);
  }

  /** The VM stopped for another reason (QMP stop, say) while GDB waited: QEMU 7.2 says T02. */
  paused(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.reply(`T${hex2(SIGINT)}thread:${this.thread()};`);
  }

  /** The VM process is ending: `W` with the exit status, as QEMU's gdb_exit sends. */
  exited(status: number): void {
    this.reply(`W${hex2(status & 0xff)}`);
  }

  // --- bytes from GDB -----------------------------------------------------------------------

  receive(bytes: Uint8Array): void {
    const { items, acks } = this.reader.feed(bytes);
    if (acks.length > 0) this.send(Buffer.from(acks));
    for (const item of items) {
      if (item.kind === "nack") {
        if (this.lastPacket !== null) this.send(this.lastPacket);
      } else if (item.kind === "interrupt") {
        this.queue = this.queue.then(() => this.interrupt());
      } else {
        const data = item.data;
        this.queue = this.queue.then(() => this.handle(data)).catch((e: unknown) => {
          this.reply(`E${hex2(14)}`);
          void e;
        });
      }
    }
  }

  private interrupt(): void {
    this.withLock(() => {
      if (this.target.isRunning()) this.target.pause();
    });
    this.paused();
  }

  private thread(): string {
    return this.multiprocess ? THREAD_MP : THREAD;
  }

  private reply(data: string, binary = false): void {
    const framed = framePacket(data, binary);
    this.lastPacket = framed;
    this.send(framed);
  }

  private async handle(p: string): Promise<void> {
    const r = await this.answer(p);
    if (r !== null) this.reply(r.data, r.binary);
  }

  /** The reply to one packet, or null when the reply is a later stop (c, s, vCont). */
  private async answer(p: string): Promise<{ data: string; binary?: boolean } | null> {
    const ok = (data: string) => ({ data });
    const t = this.target;
    switch (p[0]) {
      case "?":
        // QEMU treats `?` as a fresh attach: breakpoints go.
        this.breakpoints.clear();
        this.watchpoints.length = 0;
        return ok(`T${hex2(SIGTRAP)}thread:${this.thread()};`);
      case "g":
        return ok(this.withLock(() => Array.from({ length: 33 }, (_, i) => regHex(t.readReg(i) ?? 0)).join("")));
      case "G": {
        const hexs = p.slice(1);
        this.withLock(() => {
          for (let i = 0; i < 33 && (i + 1) * 8 <= hexs.length; i++) t.writeReg(i, parseRegHex(hexs.slice(i * 8, i * 8 + 8)));
        });
        return ok("OK");
      }
      case "p": {
        const v = this.withLock(() => t.readReg(parseInt(p.slice(1), 16)));
        return ok(v === null ? "E14" : regHex(v));
      }
      case "P": {
        const [n, v] = p.slice(1).split("=");
        const done = this.withLock(() => t.writeReg(parseInt(n ?? "", 16), parseRegHex(v ?? "")));
        return ok(done ? "OK" : "E14");
      }
      case "m": {
        const [a, l] = p.slice(1).split(",");
        const addr = parseInt(a ?? "", 16);
        const len = parseInt(l ?? "", 16);
        if (!Number.isFinite(addr) || !Number.isFinite(len)) return ok("E22");
        if (len > 2048) return ok("E22");
        const bytes = this.withLock(() => t.readMem(addr >>> 0, len));
        return ok(bytes === null ? "E14" : toHex(bytes));
      }
      case "M": {
        const m = /^M([0-9a-fA-F]+),([0-9a-fA-F]+):([0-9a-fA-F]*)$/.exec(p);
        if (m === null) return ok("E22");
        const bytes = Buffer.from(m[3] ?? "", "hex");
        const done = this.withLock(() => t.writeMem(parseInt(m[1] ?? "", 16) >>> 0, bytes));
        return ok(done ? "OK" : "E14");
      }
      case "c":
        return this.resume(false);
      case "s":
        return this.resume(true);
      case "C":
        return this.resume(false);
      case "Z":
      case "z":
        return ok(this.breakpointPacket(p));
      case "H":
        return ok("OK");
      case "T":
        return ok(/^Tp?0*1(\.0*1)?$/.test(p) ? "OK" : "E22");
      case "D":
        this.breakpoints.clear();
        this.watchpoints.length = 0;
        this.step = false;
        this.withLock(() => {
          if (!t.isRunning()) t.resume();
        });
        return ok("OK");
      case "k":
        this.withLock(() => t.kill());
        return null;
      case "v":
        return this.vPacket(p);
      case "q":
      case "Q":
        return this.query(p);
      case "!":
        return ok("OK");
      default:
        return ok("");
    }
  }

  private resume(step: boolean): null {
    this.step = step;
    this.skipOnce = true;
    this.waiting = true;
    this.withLock(() => {
      if (!this.target.isRunning()) this.target.resume();
    });
    return null;
  }

  private vPacket(p: string): { data: string } | null {
    if (p === "vCont?") return { data: "vCont;c;C;s;S" };
    if (p.startsWith("vCont;")) {
      // All-stop with one hart: the first action that applies to it decides.
      const action = p.slice(6).split(";")[0] ?? "";
      const a = action[0];
      if (a === "s" || a === "S") return this.resume(true);
      if (a === "c" || a === "C") return this.resume(false);
      return { data: "" };
    }
    if (p.startsWith("vAttach;")) return { data: `T${hex2(SIGTRAP)}thread:${this.thread()};` };
    if (p.startsWith("vKill;")) {
      this.withLock(() => this.target.kill());
      return { data: "OK" };
    }
    return { data: "" };
  }

  private async query(p: string): Promise<{ data: string; binary?: boolean }> {
    if (p.startsWith("qSupported")) {
      this.multiprocess = p.includes("multiprocess+");
      return { data: "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+" };
    }
    if (p.startsWith("qXfer:features:read:")) {
      const m = /^qXfer:features:read:([^:]+):([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(p);
      const doc = m === null ? undefined : this.annexes.get(m[1] ?? "");
      if (m === null || doc === undefined) return { data: "E00" };
      const off = parseInt(m[2] ?? "0", 16);
      const len = Math.min(parseInt(m[3] ?? "0", 16), (4096 - 5) >> 1);
      if (off >= doc.length) return { data: "l", binary: true };
      const chunk = doc.slice(off, off + len);
      return { data: (off + len < doc.length ? "m" : "l") + chunk, binary: true };
    }
    if (p === "qC") return { data: `QC${this.thread()}` };
    if (p === "qfThreadInfo") return { data: `m${this.thread()}` };
    if (p === "qsThreadInfo") return { data: "l" };
    if (p === "qAttached" || p.startsWith("qAttached:")) return { data: "1" };
    if (p.startsWith("qThreadExtraInfo,")) {
      const state = this.withLock(() => this.target.isRunning()) ? "running" : "halted ";
      return { data: toHex(Buffer.from(`CPU#0 [${state}]`)) };
    }
    if (p.startsWith("qRcmd,")) {
      const command = Buffer.from(p.slice(6), "hex").toString("latin1");
      const out = await this.target.hmp(command);
      if (out.length > 0) this.reply("O" + toHex(Buffer.from(out, "latin1")));
      return { data: "OK" };
    }
    return { data: "" };
  }

  private breakpointPacket(p: string): string {
    const m = /^([Zz])([0-4]),([0-9a-fA-F]+),([0-9a-fA-F]+)/.exec(p);
    if (m === null) return "E22";
    const insert = m[1] === "Z";
    const type = Number(m[2]);
    const addr = parseInt(m[3] ?? "", 16) >>> 0;
    const len = parseInt(m[4] ?? "", 16);
    if (type === 0 || type === 1) {
      // Software and hardware breakpoints are both host-side checks on the virtual pc.
      if (insert) this.breakpoints.add(addr);
      else this.breakpoints.delete(addr);
      return "OK";
    }
    const wtype = type as 2 | 3 | 4;
    const i = this.watchpoints.findIndex((w) => w.addr === addr && w.len === len && w.type === wtype);
    if (insert) {
      if (i < 0) this.watchpoints.push({ addr, len, type: wtype });
    } else if (i >= 0) {
      this.watchpoints.splice(i, 1);
    } else {
      return "E22";
    }
    return "OK";
  }

  /** The connection closed: forget everything and let the VM run, as QEMU's detach does. */
  closed(): void {
    this.breakpoints.clear();
    this.watchpoints.length = 0;
    this.step = false;
    this.waiting = false;
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/**
 * The data access the instruction at the hart's pc is about to make, decoded from the
 * instruction (compressed forms expanded): address, size and direction; null for none.
 */
function dataAccess(cpu: Cpu, target: GdbTarget): { addr: number; size: number; read: boolean; write: boolean } | null {
  const bytes = target.readMem(cpu.pc >>> 0, 4) ?? target.readMem(cpu.pc >>> 0, 2);
  if (bytes === null) return null;
  let inst = bytes[0] | (bytes[1] << 8) | ((bytes[2] ?? 0) << 16) | ((bytes[3] ?? 0) << 24);
  if ((inst & 3) !== 3) {
    if ((cpu.misa & 4) === 0) return null;
    inst = expandCompressed(inst & 0xffff);
    if (inst === 0) return null;
  }
  const op = inst & 0x7f;
  const f3 = (inst >>> 12) & 7;
  const base = cpu.x[(inst >>> 15) & 31];
  if (op === 0x03) return { addr: (base + (inst >> 20)) >>> 0, size: 1 << (f3 & 3), read: true, write: false };
  if (op === 0x23) {
    const imm = ((inst >> 25) << 5) | ((inst >>> 7) & 31);
    return { addr: (base + imm) >>> 0, size: 1 << (f3 & 3), read: false, write: true };
  }
  if (op === 0x2f && f3 === 2) {
    const f5 = inst >>> 27;
    return { addr: base >>> 0, size: 4, read: f5 !== 3, write: f5 !== 2 };
  }
  return null;
}
