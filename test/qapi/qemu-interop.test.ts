// Differential test against the real QEMU 7.2: the same bad arguments must
// get the same error descs, and the commands and events minivm shares with
// QEMU must introspect to the same structure once type numbers are resolved.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QMP_COMMANDS } from "../../src/qapi/generated/commands.js";
import { QMP_SCHEMA_INFO } from "../../src/qapi/generated/introspect.js";
import { requireTool } from "../helpers/interop.js";

const QEMU = "qemu-system-riscv32";

class QmpLink {
  private buf = "";
  private waiters: ((line: string) => void)[] = [];
  private lines: string[] = [];

  constructor(private readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line === "" || "event" in (JSON.parse(line) as object)) continue;
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
  }

  next(): Promise<Record<string, unknown>> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line) as Record<string, unknown>);
    return new Promise((resolve) => this.waiters.push((l) => resolve(JSON.parse(l) as Record<string, unknown>)));
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + "\n");
    return this.next();
  }

  close(): void {
    this.sock.destroy();
  }
}

async function connectWhenReady(sockPath: string, qemu: ChildProcess): Promise<Socket> {
  // QEMU creates the socket during start-up; retry until it accepts.
  for (;;) {
    if (qemu.exitCode !== null) throw new Error(`${QEMU} exited with ${qemu.exitCode}`);
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(sockPath, () => resolve(s));
        s.once("error", reject);
      });
    } catch {
      await new Promise((r) => setImmediate(r));
    }
  }
}

/** A type's structure with masked names replaced by the structure they name. */
function resolve(schema: readonly unknown[], name: string, seen: Set<string> = new Set()): unknown {
  const entries = schema as Record<string, unknown>[];
  const e = entries.find((x) => x["name"] === name);
  if (!e) return name;
  if (e["meta-type"] === "builtin") return name;
  if (seen.has(name)) return "<recursive>";
  const inner = new Set(seen).add(name);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === "name" && e["meta-type"] !== "command" && e["meta-type"] !== "event") continue;
    if (k === "features") continue;
    if (k === "type" || k === "element-type" || k === "arg-type" || k === "ret-type") {
      out[k] = resolve(schema, v as string, inner);
    } else if (k === "members" || k === "variants") {
      out[k] = (v as Record<string, unknown>[]).map((m) => {
        const r: Record<string, unknown> = {};
        for (const [mk, mv] of Object.entries(m)) {
          if (mk === "features") continue;
          r[mk] = mk === "type" ? resolve(schema, mv as string, inner) : mv;
        }
        return r;
      });
    } else {
      out[k] = v;
    }
  }
  return out;
}

const available = requireTool(QEMU, "qemu-system-misc");

describe.skipIf(!available)("validators and introspection against QEMU 7.2", () => {
  let qemu: ChildProcess;
  let link: QmpLink;
  let qemuSchema: unknown[];
  let sockDir = "";

  beforeAll(async () => {
    sockDir = mkdtempSync(path.join(tmpdir(), "minivm-qapi-qemu-"));
    const sockPath = path.join(sockDir, "qmp.sock");
    qemu = spawn(QEMU, ["-M", "virt", "-bios", "none", "-S", "-display", "none", "-nodefaults", "-qmp", `unix:${sockPath},server=on,wait=off`], {
      stdio: "ignore",
    });
    link = new QmpLink(await connectWhenReady(sockPath, qemu));
    await link.next(); // greeting
    await link.execute("qmp_capabilities");
    qemuSchema = (await link.execute("query-qmp-schema"))["return"] as unknown[];
  });

  afterAll(() => {
    link?.close();
    qemu?.kill();
    if (sockDir) rmSync(sockDir, { recursive: true, force: true });
  });

  const requests: [string, Record<string, unknown>][] = [
    ["human-monitor-command", { "command-line": 1, foo: 2 }],
    ["human-monitor-command", { foo: 2 }],
    ["human-monitor-command", { "command-line": "info status", "cpu-index": "x" }],
    ["human-monitor-command", { "command-line": "info status", "cpu-index": 1.5 }],
    ["human-monitor-command", { "command-line": "info status", "cpu-index": [] }],
    ["human-monitor-command", { "command-line": null }],
    ["query-status", { a: 1 }],
    ["query-version", { a: 1 }],
    ["query-qmp-schema", { a: 1 }],
    ["stop", { x: null }],
    // With several stray keys QEMU names the first its hash table iterates to.
    ["query-status", { b: 1, a: 2, zz: 3 }],
    ["query-status", Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`key-${i}`, i]))],
    ["query-version", { "\u00e9t\u00e9": 1, zebra: 2, apple: 3, "x-y": 4, m: 5, n: 6, o: 7, p: 8, q: 9 }],
    ["human-monitor-command", { "command-line": "info status", "cpu-index": 0, d: 1, c: 2, b: 3, a: 4 }],
    ["human-monitor-command", { z: 1, "command-line": "info status", y: 2, x: 3, "cpu-index": 0, w: 4 }],
  ];

  for (const [command, args] of requests) {
    it(`gives QEMU's desc for ${command} ${JSON.stringify(args)}`, async () => {
      const reply = await link.execute(command, args);
      const qemuDesc = (reply["error"] as { desc: string }).desc;
      let ours = "(accepted)";
      try {
        QMP_COMMANDS.get(command)!.parseArgs(args);
      } catch (err) {
        ours = (err as Error).message;
      }
      expect(ours).toBe(qemuDesc);
    });
  }

  const shared = [
    "query-status",
    "stop",
    "cont",
    "system_reset",
    "system_powerdown",
    "qmp_capabilities",
    "query-version",
    "query-commands",
    "quit",
    "query-qmp-schema",
    "query-name",
    "human-monitor-command",
    "SHUTDOWN",
    "POWERDOWN",
    "RESET",
    "STOP",
    "RESUME",
  ];

  for (const name of shared) {
    it(`introspects ${name} to the same structure as QEMU`, () => {
      expect(resolve(QMP_SCHEMA_INFO, name)).toEqual(resolve(qemuSchema, name));
    });
  }
});
