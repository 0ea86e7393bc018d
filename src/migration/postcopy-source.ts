// The source's half of postcopy (QEMU 7.2 migration.c postcopy_start, the return-path thread,
// postcopy_pause / postcopy_do_resume; ram.c's page queue and ram_dirty_bitmap_reload). Runs
// on the migration thread: the return path is read from the same socket, page requests are
// served before the background push, and a broken channel pauses the migration until
// `migrate` with `resume: true` hands over a new one.

import type { Socket } from "node:net";
import { Writable } from "node:stream";
import { parseMigrationUri } from "./channels.js";
import {
  MIG_CMD_PACKAGED,
  MIG_CMD_PING,
  MIG_CMD_POSTCOPY_LISTEN,
  MIG_CMD_POSTCOPY_RAM_DISCARD,
  MIG_CMD_POSTCOPY_RESUME,
  MIG_CMD_POSTCOPY_RUN,
  MIG_CMD_RECV_BITMAP,
} from "./load.js";
import { QemuFileWriter } from "./qemu-file.js";
import { RAM_PAGE_SIZE, type RamSaver } from "./ram-stream.js";
import type { SavedSection } from "./sections.js";
import { MigrationStreamWriter } from "./stream.js";
import { TRACE } from "../trace/events.js";
import { trace } from "../trace/tracer.js";

/** Return-path message types (migration.c enum mig_rp_message_type) and their fixed lengths. */
export const RP = { SHUT: 1, PONG: 2, REQ_PAGES_ID: 3, REQ_PAGES: 4, RECV_BITMAP: 5, RESUME_ACK: 6, MAX: 7 } as const;
const RP_NAMES = ["INVALID", "SHUT", "PONG", "REQ_PAGES_ID", "REQ_PAGES", "RECV_BITMAP", "RESUME_ACK"];
const RP_LEN = [-1, 4, 4, -1, 12, -1, 4];
const RECV_BITMAP_ENDING = 0x0123456789abcdefn;
/** QEMU's MAX_DISCARDS_PER_COMMAND. */
const MAX_DISCARDS_PER_COMMAND = 12;

/** Something the return path said that breaks the protocol: the migration fails. */
export class ReturnPathError extends Error {}

export interface ReturnPathHandlers {
  shut(error: number): void;
  pong(value: number): void;
  reqPages(block: string | null, start: number, len: number): void;
  recvBitmap(block: string, bitmap: Uint8Array): void;
  resumeAck(value: number): void;
  /** The channel ended or failed (the peer went away, or migrate-pause shut it). */
  closed(why: string): void;
  /** A malformed message (QEMU's "RP: ..." words). */
  bad(why: string): void;
}

/** source_return_path_thread's parser, fed by the socket's 'data' events. */
export class ReturnPathReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(
    sock: Socket,
    private readonly h: ReturnPathHandlers,
  ) {
    sock.on("data", (chunk: Buffer) => {
      if (this.done) return;
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      try {
        this.parse();
      } catch (e) {
        this.done = true;
        h.bad(e instanceof Error ? e.message : String(e));
      }
    });
    const end = (why: string) => {
      if (this.done) return;
      this.done = true;
      h.closed(why);
    };
    sock.on("end", () => end("the destination closed the migration channel"));
    sock.on("close", () => end("the migration channel closed"));
    sock.on("error", (e) => end(e.message));
  }

  stop(): void {
    this.done = true;
  }

  private parse(): void {
    for (;;) {
      if (this.done || this.buf.length < 4) return;
      const type = this.buf.readUInt16BE(0);
      const len = this.buf.readUInt16BE(2);
      if (type >= RP.MAX || type === 0) throw new ReturnPathError(`RP: Received invalid message 0x${hex4(type)} length 0x${hex4(len)}`);
      if ((RP_LEN[type] !== -1 && len !== RP_LEN[type]) || len > 512) {
        throw new ReturnPathError(`RP: Received '${RP_NAMES[type]}' message (0x${hex4(type)}) with incorrect length ${len} expecting ${RP_LEN[type] === -1 ? "(variable)" : RP_LEN[type]}`);
      }
      let total = 4 + len;
      if (type === RP.RECV_BITMAP) {
        // The bitmap follows the message on the channel: be64 size, the bitmap, be64 end mark.
        if (this.buf.length < total + 8) return;
        const size = Number(this.buf.readBigUInt64BE(total));
        if (size > 1 << 24) throw new ReturnPathError(`ram_dirty_bitmap_reload: bitmap size 0x${size.toString(16)} is not plausible`);
        total += 8 + size + 8;
      }
      if (this.buf.length < total) return;
      const m = this.buf.subarray(0, total);
      this.buf = this.buf.subarray(total);
      const p = m.subarray(4, 4 + len);
      switch (type) {
        case RP.SHUT:
          this.done = true;
          this.h.shut(p.readUInt32BE(0));
          return;
        case RP.PONG:
          this.h.pong(p.readUInt32BE(0));
          break;
        case RP.REQ_PAGES:
          this.h.reqPages(null, Number(p.readBigUInt64BE(0)), p.readUInt32BE(8));
          break;
        case RP.REQ_PAGES_ID: {
          const n = len >= 13 ? p[12] : -1;
          if (n < 0 || len !== 13 + n) throw new ReturnPathError(`RP: Req_Page_id with length ${len} expecting ${n < 0 ? 13 : 13 + n}`);
          this.h.reqPages(p.subarray(13, 13 + n).toString("latin1"), Number(p.readBigUInt64BE(0)), p.readUInt32BE(8));
          break;
        }
        case RP.RECV_BITMAP: {
          if (len < 1) throw new ReturnPathError("source_return_path_thread: missing block name");
          const name = p.subarray(1, 1 + p[0]).toString("latin1");
          const size = Number(m.readBigUInt64BE(4 + len));
          const bits = m.subarray(4 + len + 8, 4 + len + 8 + size);
          const endMark = m.readBigUInt64BE(4 + len + 8 + size);
          if (endMark !== RECV_BITMAP_ENDING) throw new ReturnPathError(`ram_dirty_bitmap_reload: ramblock '${name}' end mark incorrect: 0x${endMark.toString(16)}`);
          this.h.recvBitmap(name, bits);
          break;
        }
        case RP.RESUME_ACK:
          this.h.resumeAck(p.readUInt32BE(0));
          break;
      }
    }
  }
}

const hex4 = (v: number) => v.toString(16).padStart(4, "0");

function be32(v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

/** The PACKAGED blob: LISTEN, every device as a FULL section, PING 3, RUN (postcopy_start). */
export async function buildPackage(machineName: string, sections: readonly SavedSection[]): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const sink = new Writable({
    write(chunk: Uint8Array, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  const f = new QemuFileWriter(sink);
  const w = new MigrationStreamWriter(f, machineName);
  w.command(MIG_CMD_POSTCOPY_LISTEN);
  w.deviceSections(sections);
  w.command(MIG_CMD_PING, be32(3));
  w.command(MIG_CMD_POSTCOPY_RUN);
  await f.flush();
  return Buffer.concat(chunks);
}

/** The discard phase (ram_postcopy_send_discard_bitmap): every page still to send, in runs. */
export function writeDiscards(w: MigrationStreamWriter, ram: RamSaver): number {
  const runs = ram.pendingRuns();
  const name = Buffer.from(ram.blockName, "latin1");
  let commands = 0;
  for (let i = 0; i < runs.length; i += MAX_DISCARDS_PER_COMMAND) {
    const batch = runs.slice(i, i + MAX_DISCARDS_PER_COMMAND);
    const b = Buffer.alloc(3 + name.length + 16 * batch.length);
    b[0] = 0; // postcopy_ram_discard_version
    b[1] = name.length;
    b.set(name, 2);
    b[2 + name.length] = 0;
    let o = 3 + name.length;
    for (const [first, count] of batch) {
      b.writeBigUInt64BE(BigInt(first * RAM_PAGE_SIZE), o);
      b.writeBigUInt64BE(BigInt(count * RAM_PAGE_SIZE), o + 8);
      o += 16;
    }
    w.command(MIG_CMD_POSTCOPY_RAM_DISCARD, b);
    commands++;
  }
  return commands;
}

/** RECV_BITMAP's command payload: the block name, counted. */
export function recvBitmapCommand(w: MigrationStreamWriter, blockName: string): void {
  const name = Buffer.from(blockName, "latin1");
  const b = Buffer.alloc(1 + name.length);
  b[0] = name.length;
  b.set(name, 1);
  w.command(MIG_CMD_RECV_BITMAP, b);
}

export { MIG_CMD_PACKAGED, MIG_CMD_PING, MIG_CMD_POSTCOPY_RESUME };

/** A page request from the destination, checked as migrate_handle_rp_req_pages does. */
export function requestedPages(ram: RamSaver, block: string | null, start: number, len: number): number[] {
  if (block !== null && block !== ram.blockName) throw new ReturnPathError(`ram_save_queue_pages: Couldn't find block ${block}`);
  if (start % RAM_PAGE_SIZE !== 0 || len % RAM_PAGE_SIZE !== 0) {
    throw new ReturnPathError(`migrate_handle_rp_req_pages: Misaligned page request, start: ${start.toString(16)} len: ${len}`);
  }
  if (start + len > ram.totalBytes) {
    throw new ReturnPathError(`ram_save_queue_pages request overrun start=${start.toString(16)} len=${len.toString(16)} blocklen=${ram.totalBytes.toString(16)}`);
  }
  const out: number[] = [];
  for (let p = start / RAM_PAGE_SIZE; p < (start + len) / RAM_PAGE_SIZE; p++) {
    out.push(p);
    trace(TRACE.migration_page_requested, p);
  }
  return out;
}

/** True when `uri` names a socket, whose other direction carries a return path (exec: and file: do not). */
export function hasReturnPath(uri: string): boolean {
  const kind = parseMigrationUri(uri, "outgoing").kind;
  return kind === "unix" || kind === "tcp";
}
