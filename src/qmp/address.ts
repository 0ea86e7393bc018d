// QEMU's spellings of a QMP endpoint: `--qmp unix:PATH[,server=on,wait=off]`,
// `--qmp tcp:HOST:PORT[,...]`, and `-chardev socket,id=ID,path=P|host=H,port=N,...` with
// `-mon chardev=ID,mode=control`. minivm adds `queue-full=suspend|drop` per monitor.

import type { MonitorConfig, SocketAddress } from "../core/protocol.js";

export interface ParsedEndpoint {
  address: SocketAddress;
  server: boolean;
  wait: boolean;
  queueFull: "suspend" | "drop";
  /** `tls-creds=ID[,tls-authz=ID]` on a -chardev: object ids, resolved once every option is read. */
  tls?: { creds: string; authz: string | null };
}

function parseBool(name: string, value: string): boolean {
  if (value === "on" || value === "yes" || value === "true" || value === "") return true;
  if (value === "off" || value === "no" || value === "false") return false;
  throw new Error(`Parameter '${name}' expects 'on' or 'off'`);
}

/** Split QEMU's `a=b,c=d` option syntax (`,,` is a literal comma). */
export function splitOptions(text: string): string[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "," && text[i + 1] === ",") {
      cur += ",";
      i++;
    } else if (ch === ",") {
      parts.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  return parts;
}

function optionMap(parts: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq < 0) m.set(p, "");
    else m.set(p.slice(0, eq), p.slice(eq + 1));
  }
  return m;
}

function parseTcp(hostPort: string): SocketAddress {
  const colon = hostPort.lastIndexOf(":");
  if (colon < 0) throw new Error(`TCP address '${hostPort}' needs HOST:PORT`);
  let host = hostPort.slice(0, colon);
  const portText = hostPort.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new Error(`invalid TCP port '${portText}'`);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  // QEMU binds every address for an empty host; minivm binds loopback unless told otherwise.
  if (host === "") host = "127.0.0.1";
  return { kind: "tcp", host, port };
}

function finish(opts: Map<string, string>, address: SocketAddress, known: string[]): ParsedEndpoint {
  for (const key of opts.keys()) {
    if (!known.includes(key)) throw new Error(`Invalid parameter '${key}'`);
  }
  // As in QEMU, a socket without server=on connects out as a client.
  const server = opts.has("server") ? parseBool("server", opts.get("server") ?? "") : false;
  // QEMU's default for a server is wait=on; `--qmp` users nearly always say wait=off.
  const wait = opts.has("wait") ? parseBool("wait", opts.get("wait") ?? "") : opts.has("nowait") ? false : server;
  const qf = opts.get("queue-full") ?? "suspend";
  if (qf !== "suspend" && qf !== "drop") throw new Error(`Parameter 'queue-full' expects 'suspend' or 'drop'`);
  return { address, server, wait: server && wait, queueFull: qf };
}

const COMMON = ["server", "wait", "nowait", "queue-full"];

/** Parse `unix:PATH,...` or `tcp:HOST:PORT,...` (the `--qmp` argument). */
export function parseQmpEndpoint(spec: string): ParsedEndpoint {
  const [head = "", ...rest] = splitOptions(spec);
  const opts = optionMap(rest);
  if (head.startsWith("unix:")) {
    const path = head.slice(5);
    if (path === "") throw new Error("unix socket path is empty");
    return finish(opts, { kind: "unix", path }, COMMON);
  }
  if (head.startsWith("tcp:")) return finish(opts, parseTcp(head.slice(4)), COMMON);
  throw new Error(`'${spec}' is not a QMP address: use unix:PATH or tcp:HOST:PORT`);
}

/** Parse `-chardev socket,id=ID,...`; returns the id and endpoint. */
export function parseChardev(spec: string): { id: string; endpoint: ParsedEndpoint } {
  const [backend = "", ...rest] = splitOptions(spec);
  if (backend !== "socket") throw new Error(`chardev backend '${backend}' is not supported (only 'socket')`);
  const opts = optionMap(rest);
  const id = opts.get("id");
  if (id === undefined || id === "") throw new Error("chardev: Parameter 'id' is missing");
  opts.delete("id");
  const path = opts.get("path");
  opts.delete("path");
  const host = opts.get("host");
  const port = opts.get("port");
  opts.delete("host");
  opts.delete("port");
  let address: SocketAddress;
  if (path !== undefined) address = { kind: "unix", path };
  else if (port !== undefined) address = parseTcp(`${host ?? ""}:${port}`);
  else throw new Error(`chardev '${id}': socket needs path= or port=`);
  // TLS (issue 15): QEMU's chardev socket options; the objects may come later on the command line.
  const tlsCreds = opts.get("tls-creds");
  const tlsAuthz = opts.get("tls-authz");
  opts.delete("tls-creds");
  opts.delete("tls-authz");
  const endpoint = finish(opts, address, COMMON);
  if (tlsCreds === undefined) {
    if (tlsAuthz !== undefined) throw new Error("'tls_authz' option requires 'tls_creds' option");
    return { id, endpoint };
  }
  if (address.kind !== "tcp") throw new Error("TLS can only be used over TCP socket");
  return { id, endpoint: { ...endpoint, tls: { creds: tlsCreds, authz: tlsAuthz ?? null } } };
}

/** Parse `-mon chardev=ID,mode=control[,pretty=on][,queue-full=...]`. */
export function parseMon(spec: string): { chardev: string; queueFull?: "suspend" | "drop" } {
  const opts = optionMap(splitOptions(spec));
  const chardev = opts.get("chardev");
  if (chardev === undefined) throw new Error("-mon: Parameter 'chardev' is missing");
  const mode = opts.get("mode") ?? "readline";
  if (mode !== "control") throw new Error(`-mon mode '${mode}' is not supported: minivm's monitors speak QMP (mode=control)`);
  for (const key of opts.keys()) {
    if (!["chardev", "mode", "pretty", "queue-full"].includes(key)) throw new Error(`-mon: Invalid parameter '${key}'`);
  }
  const qf = opts.get("queue-full");
  if (qf !== undefined && qf !== "suspend" && qf !== "drop") throw new Error(`Parameter 'queue-full' expects 'suspend' or 'drop'`);
  return qf === undefined ? { chardev } : { chardev, queueFull: qf };
}

export function toMonitorConfig(e: ParsedEndpoint): MonitorConfig {
  return { address: e.address, wait: e.wait, queueFull: e.queueFull, oob: true, server: e.server };
}

export function formatAddress(a: SocketAddress): string {
  return a.kind === "unix" ? `unix:${a.path}` : `tcp:${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}
