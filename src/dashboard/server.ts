// `minivm run --dashboard [HOST:]PORT`: the live teaching view's HTTP and WebSocket server.
// It runs on the main thread and only reads what every thread already shares without a lock
// (the trace rings, the BQL's bookkeeping, the page bitmaps) plus one QMP connection of its
// own; it never takes the BQL. Everything it serves needs the random token printed at start,
// so another local user cannot drive the VM through it (DESIGN.md §8 and §7).

import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import type { MonitorConfig } from "../core/protocol.js";
import type { SharedRegions } from "../core/regions.js";
import { DashboardFeeds, type ClientMessage } from "./feeds.js";
import { ASSETS, assetPath } from "./assets.js";
import type { DashboardListen } from "./address.js";

export type { DashboardListen } from "./address.js";

export interface DashboardOptions {
  listen: DashboardListen;
  regions: SharedRegions;
  /** Console input typed on the page, to the serial input ring. */
  toGuest(bytes: Uint8Array): void;
}

export interface Dashboard {
  readonly url: string;
  readonly port: number;
  /**
   * The dashboard's own QMP monitor, for the monitor thread to open beside the user's: a unix
   * socket in a private directory, so the page's buttons are ordinary QMP clients.
   */
  readonly monitor: MonitorConfig;
  /** Guest console output, for every page open now and later ones (a bounded backlog). */
  console(bytes: Uint8Array): void;
  /** The QMP socket is listening: connect to it. */
  monitorReady(): void;
  stop(): Promise<void>;
}

/** Console bytes kept for a page that opens later, so it still sees the prompt. */
const CONSOLE_BACKLOG = 64 * 1024;

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const token = randomBytes(16).toString("hex");
  const tokenBytes = Buffer.from(token);
  const authorised = (req: IncomingMessage): boolean => {
    const given = Buffer.from(new URL(req.url ?? "/", "http://x").searchParams.get("token") ?? "");
    return given.length === tokenBytes.length && timingSafeEqual(given, tokenBytes);
  };

  const dir = mkdtempSync(join(tmpdir(), "minivm-dashboard-"));
  const qmpPath = join(dir, "qmp.sock");
  const clients = new Set<WebSocket>();
  let backlog: Buffer[] = [];
  let backlogBytes = 0;
  const feeds = new DashboardFeeds(o.regions, qmpPath, (msg) => {
    const text = JSON.stringify(msg);
    for (const c of clients) if (c.readyState === c.OPEN) c.send(text);
  });

  const page = readFileSync(assetPath("index.html"), "utf8");
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    if (!authorised(req)) {
      res.writeHead(403, { "content-type": "text/plain" }).end("403 Forbidden: the dashboard's URL carries a token; use the one minivm printed\n");
      return;
    }
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const headers = { "cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer" };
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { ...headers, "content-type": "text/html; charset=utf-8" }).end(page.replaceAll("{{TOKEN}}", token));
      return;
    }
    const asset = ASSETS.get(path);
    if (asset === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("404 Not Found\n");
      return;
    }
    res.writeHead(200, { ...headers, "content-type": asset.type }).end(readFileSync(asset.file));
  };

  const http = createServer(serve);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  http.on("upgrade", (req, socket, head) => {
    if (!authorised(req) || new URL(req.url ?? "/", "http://x").pathname !== "/ws") {
      socket.end("HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      clients.add(ws);
      ws.send(JSON.stringify(feeds.hello()));
      if (backlogBytes > 0) ws.send(Buffer.concat(backlog));
      feeds.setActive(true);
      ws.on("message", (data, isBinary) => {
        if (isBinary) return;
        let msg: ClientMessage;
        try {
          msg = JSON.parse(data.toString()) as ClientMessage;
        } catch {
          return;
        }
        if (msg.t === "input" && typeof msg.data === "string") o.toGuest(new TextEncoder().encode(msg.data));
        else if (msg.t === "qmp") void feeds.runQmp(msg).then((reply) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(reply)));
      });
      ws.on("close", () => {
        clients.delete(ws);
        if (clients.size === 0) feeds.setActive(false);
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    const failed = (e: Error): void => {
      rmSync(dir, { recursive: true, force: true });
      feeds.stop();
      reject(new Error(`--dashboard ${o.listen.host}:${o.listen.port}: ${e.message}`));
    };
    http.once("error", failed);
    http.listen(o.listen.port, o.listen.host, () => {
      http.off("error", failed);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  const hostInUrl = o.listen.host.includes(":") ? `[${o.listen.host}]` : o.listen.host;
  const url = `http://${hostInUrl}:${port}/?token=${token}`;

  return {
    url,
    port,
    monitor: { address: { kind: "unix", path: qmpPath }, wait: false, queueFull: "suspend", server: true, oob: true },
    console(bytes: Uint8Array): void {
      const b = Buffer.from(bytes);
      backlog.push(b);
      backlogBytes += b.length;
      while (backlogBytes - (backlog[0]?.length ?? 0) >= CONSOLE_BACKLOG) backlogBytes -= (backlog.shift() as Buffer).length;
      for (const c of clients) if (c.readyState === c.OPEN) c.send(b, { binary: true });
    },
    monitorReady: () => feeds.connect(),
    async stop(): Promise<void> {
      feeds.stop();
      backlog = [];
      for (const c of clients) c.terminate();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
