// Migration channels: the URIs QEMU 7.2 accepts for `migrate` and `-incoming` / 
// `migrate-incoming` (migration/migration.c qmp_migrate, qemu_start_incoming_migration;
// util/qemu-sockets.c socket_parse, inet_parse; migration/exec.c) plus QEMU 8.2's
// `file:PATH[,offset=N]` (migration/file.c). Each opens to a plain Node stream: the stream
// writer and loader know nothing about sockets or processes. Errors use QEMU's words.

import { spawn, type ChildProcess } from "node:child_process";
import { createReadStream, createWriteStream, existsSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { getSystemErrorMap } from "node:util";
// TLS (issue 15): the wrapping lives in src/crypto/tls-channel.ts; the edits here are marked "TLS:".
import { secureIncoming, secureOutgoing, type MigrationTls } from "../crypto/tls-channel.js";

export type MigrationUri =
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: string }
  | { kind: "exec"; command: string }
  | { kind: "file"; path: string; offset: number };

/** A URI whose scheme QEMU does not know (callers word it per command). */
export class UnknownMigrationProtocol extends Error {}

/** QERR_INVALID_PARAMETER_VALUE for `migrate`'s uri. */
const BAD_OUTGOING = "Parameter 'uri' expects a valid migration protocol";

function strip(uri: string, prefix: string): string | null {
  return uri.startsWith(prefix) ? uri.slice(prefix.length) : null;
}

/** inet_parse: HOST:PORT, [IPV6]:PORT or :PORT (no host = any); options after ',' are not supported. */
function parseInet(str: string): { host: string; port: string } {
  let m: RegExpMatchArray | null;
  if (str.startsWith(":")) {
    m = /^:([^,]{1,32})$/.exec(str);
    if (!m) throw new Error(`error parsing port in address '${str}'`);
    return { host: "", port: m[1] };
  }
  if (str.startsWith("[")) {
    m = /^\[([^\]]{1,64})\]:([^,]{1,32})$/.exec(str);
    if (!m) throw new Error(`error parsing IPv6 address '${str}'`);
    return { host: m[1], port: m[2] };
  }
  m = /^([^:]{1,64}):([^,]{1,32})$/.exec(str);
  if (!m) throw new Error(`error parsing address '${str}'`);
  return { host: m[1], port: m[2] };
}

/** qemu_strtosz: a byte count with an optional K/M/G/T/P/E suffix (powers of 1024). */
function parseSize(s: string): number | null {
  const m = /^(0x[0-9a-fA-F]+|\d+)([bBkKmMgGtTpPeE]?)$/.exec(s);
  if (!m) return null;
  const shift = { "": 0, b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 }[m[2].toLowerCase()] ?? 0;
  const v = Number(m[1]) * 2 ** shift;
  return Number.isSafeInteger(v) ? v : null;
}

/**
 * Parse a migration URI. `side` picks QEMU's words for an unknown protocol: `migrate` says
 * "Parameter 'uri' expects a valid migration protocol", `-incoming` says "unknown migration
 * protocol: URI".
 */
export function parseMigrationUri(uri: string, side: "outgoing" | "incoming"): MigrationUri {
  const unknown = () => new UnknownMigrationProtocol(side === "outgoing" ? BAD_OUTGOING : `unknown migration protocol: ${uri}`);
  let rest: string | null;
  if ((rest = strip(uri, "tcp:")) !== null) {
    const { host, port } = parseInet(rest);
    return { kind: "tcp", host, port };
  }
  if ((rest = strip(uri, "unix:")) !== null) {
    if (rest === "") throw new Error("invalid Unix socket address");
    return { kind: "unix", path: rest };
  }
  if ((rest = strip(uri, "exec:")) !== null) return { kind: "exec", command: rest };
  if ((rest = strip(uri, "file:")) !== null) {
    const at = rest.indexOf(",offset=");
    let offset = 0;
    if (at >= 0) {
      const spec = rest.slice(at + ",offset=".length);
      const v = parseSize(spec);
      if (v === null) throw new Error(`file URI has bad offset ${spec}: Invalid argument`);
      offset = v;
      rest = rest.slice(0, at);
    }
    return { kind: "file", path: rest, offset };
  }
  // minivm has no getfd, so no descriptor name can ever be found (QEMU's words for a miss).
  if ((rest = strip(uri, "fd:")) !== null) throw new Error(`File descriptor named '${rest}' has not been found`);
  throw unknown();
}

/** strerror-style text for a Node system error ("Connection refused"). */
export function strerror(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (typeof err.errno === "number") {
    const entry = getSystemErrorMap().get(err.errno);
    if (entry) return entry[1].charAt(0).toUpperCase() + entry[1].slice(1);
  }
  return err instanceof Error ? err.message : String(e);
}

function wrap(e: unknown, what: string): Error {
  return new Error(`${what}: ${strerror(e)}`);
}

export interface OutgoingChannel {
  stream: Writable;
  /** End the stream and wait until the other side has it all (the socket closed, the file written, the command exited). */
  close(): Promise<void>;
}

export interface IncomingListener {
  /** Where the listener is, with the real port for tcp port 0 ("tcp:127.0.0.1:41234"). */
  address: string;
  /** As query-migrate's socket-address: the listening addresses. */
  socketAddress: Array<{ type: "inet"; host: string; port: string } | { type: "unix"; path: string }>;
  /** The incoming stream: the first connection, the command's stdout or the file. */
  accept(): Promise<Readable>;
  /** Stop listening; end a running command; remove a unix socket file. */
  close(): Promise<void>;
}

function endWritable(w: Writable, done: Promise<void>): Promise<void> {
  if (!w.writableEnded) w.end();
  return done;
}

/** Open the sending side of `uri` (qmp_migrate). */
export async function openOutgoing(uri: string, tls: MigrationTls | null = null): Promise<OutgoingChannel> {
  const u = parseMigrationUri(uri, "outgoing");
  // TLS: only over sockets (minivm cannot wrap a one-way pipe or file).
  if (tls !== null && u.kind !== "tcp" && u.kind !== "unix") throw new Error(`minivm: TLS migration needs a tcp: or unix: URI, not ${u.kind}:`);
  switch (u.kind) {
    case "unix":
    case "tcp": {
      const sock = await new Promise<Socket>((resolve, reject) => {
        const s = u.kind === "unix" ? connect(u.path) : connect({ host: u.host === "" ? "localhost" : u.host, port: Number(u.port) });
        s.once("connect", () => {
          s.removeAllListeners("error");
          resolve(s);
        });
        s.once("error", (e) => {
          s.destroy();
          reject(connectError(e, u));
        });
      });
      sock.setNoDelay(true);
      // TLS: the source is the TLS client (QEMU's migration_tls_channel_connect).
      if (tls !== null) {
        const secure = await secureOutgoing(sock, tls, u.kind === "tcp" ? (u.host === "" ? "localhost" : u.host) : null);
        const done = new Promise<void>((resolve) => secure.once("close", () => resolve()));
        secure.on("error", () => undefined);
        return { stream: secure, close: () => endWritable(secure, done) };
      }
      const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
      // Errors after connecting reach whoever writes (QemuFileWriter listens for them).
      sock.on("error", () => undefined);
      return { stream: sock, close: () => endWritable(sock, closed) };
    }
    case "exec": {
      // migration/exec.c: /bin/sh -c CMD with the stream on its stdin.
      const child = spawn("/bin/sh", ["-c", u.command], { stdio: ["pipe", "ignore", "inherit"] });
      const exited = childExit(child);
      const stdin = child.stdin!;
      stdin.on("error", () => undefined);
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", () => resolve());
        child.once("error", (e) => reject(wrap(e, `Failed to spawn '${u.command}'`)));
      });
      return { stream: stdin, close: () => endWritable(stdin, exited) };
    }
    case "file": {
      // QEMU 8.2 file_start_outgoing_migration: O_CREAT | O_TRUNC | O_WRONLY, mode 0600, then seek.
      const out = createWriteStream(u.path, { flags: "w", mode: 0o600, start: u.offset });
      await new Promise<void>((resolve, reject) => {
        out.once("ready", () => resolve());
        out.once("error", (e) => reject(wrap(e, `Unable to open ${u.path}`)));
      });
      out.on("error", () => undefined);
      const closed = new Promise<void>((resolve) => out.once("close", () => resolve()));
      return { stream: out, close: () => endWritable(out, closed) };
    }
  }
}

/** inet_connect_saddr / unix_connect_saddr's words. */
function connectError(e: unknown, u: { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: string }): Error {
  if (u.kind === "unix") return wrap(e, `Failed to connect to '${u.path}'`);
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new Error(`address resolution failed for ${u.host}:${u.port}: Name or service not known`);
  return wrap(e, `Failed to connect to '${u.host}:${u.port}'`);
}

function childExit(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("close", () => resolve());
  });
}

/** Start the receiving side of `uri` (qemu_start_incoming_migration). */
export async function listenIncoming(uri: string, tls: MigrationTls | null = null): Promise<IncomingListener> {
  const u = parseMigrationUri(uri, "incoming");
  // TLS: only over sockets, as for openOutgoing.
  if (tls !== null && u.kind !== "tcp" && u.kind !== "unix") throw new Error(`minivm: TLS migration needs a tcp: or unix: URI, not ${u.kind}:`);
  switch (u.kind) {
    case "unix":
    case "tcp":
      return listenSocket(u, tls);
    case "exec": {
      const child = spawn("/bin/sh", ["-c", u.command], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", () => resolve());
        child.once("error", (e) => reject(wrap(e, `Failed to spawn '${u.command}'`)));
      });
      const exited = childExit(child);
      return {
        address: uri,
        socketAddress: [],
        accept: () => Promise.resolve(child.stdout!),
        close: async () => {
          child.stdout?.destroy();
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
          await exited;
        },
      };
    }
    case "file": {
      const input = createReadStream(u.path, { start: u.offset });
      await new Promise<void>((resolve, reject) => {
        input.once("ready", () => resolve());
        input.once("error", (e) => reject(wrap(e, `Unable to open ${u.path}`)));
      });
      return {
        address: uri,
        socketAddress: [],
        accept: () => Promise.resolve(input),
        close: async () => {
          input.destroy();
        },
      };
    }
  }
}

async function listenSocket(u: { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: string }, tls: MigrationTls | null = null): Promise<IncomingListener> {
  // allowHalfOpen: the source ends its side when it has sent everything, but the channel (and
  // with it the source's wait for the close) lasts until this side has loaded and taken over.
  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
  const pending: Socket[] = [];
  const waiting: Array<(s: Socket) => void> = [];
  server.on("connection", (raw) => {
    // TLS: the destination is the TLS server. A refused handshake is no channel: QEMU reports
    // it and keeps listening for the right source.
    if (tls !== null) {
      secureIncoming(raw, tls).then(
        (s) => deliver(s),
        (e: Error) => tls.refused?.(e.message),
      );
      return;
    }
    deliver(raw);
  });
  let delivered = false;
  const deliver = (s: Socket): void => {
    if (delivered) {
      s.destroy();
      return;
    }
    delivered = true;
    // One channel per listener (QEMU stops listening once it has all its channels).
    server.close();
    const w = waiting.shift();
    if (w) w(s);
    else pending.push(s);
  };
  if (u.kind === "unix") {
    // unix_listen_saddr unlinks a stale socket file before binding.
    rmSync(u.path, { force: true });
  }
  await new Promise<void>((resolve, reject) => {
    // unix_listen_saddr / inet_listen_saddr's words (checked against QEMU 7.2's migrate-incoming).
    server.once("error", (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (u.kind === "unix") {
        // libuv reports a missing directory as EACCES (uv_pipe_bind); bind(2), and so QEMU, says ENOENT.
        const missing = code === "EACCES" && !existsSync(dirname(u.path));
        reject(missing ? new Error(`Failed to bind socket to ${u.path}: No such file or directory`) : wrap(e, `Failed to bind socket to ${u.path}`));
      }
      else if (code === "ENOTFOUND" || code === "EAI_AGAIN") reject(new Error(`address resolution failed for ${u.host}:${u.port}: Name or service not known`));
      else reject(wrap(e, "Failed to find an available port"));
    });
    if (u.kind === "unix") server.listen(u.path, () => resolve());
    else server.listen({ host: u.host === "" ? undefined : u.host, port: Number(u.port), ipv6Only: false }, () => resolve());
  });
  server.on("error", () => undefined);
  let address: string;
  let socketAddress: IncomingListener["socketAddress"];
  if (u.kind === "unix") {
    address = `unix:${u.path}`;
    socketAddress = [{ type: "unix", path: u.path }];
  } else {
    const a = server.address();
    const port = typeof a === "object" && a !== null ? String(a.port) : u.port;
    const host = u.host === "" ? "0.0.0.0" : u.host;
    address = host.includes(":") ? `tcp:[${host}]:${port}` : `tcp:${host}:${port}`;
    socketAddress = [{ type: "inet", host, port }];
  }
  return {
    address,
    socketAddress,
    accept: () =>
      new Promise<Readable>((resolve) => {
        const s = pending.shift();
        const take = (sock: Socket) => {
          sock.on("error", () => undefined);
          resolve(sock);
        };
        if (s) take(s);
        else waiting.push(take);
      }),
    close: async () => {
      for (const s of pending.splice(0)) s.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
