// `minivm qmp ADDRESS`: an interactive QMP shell in qmp-shell's syntax.
//   query-status                   -> {"execute": "query-status"}
//   x-oob-test lock=true           -> arguments parsed as JSON where they parse, else strings
//   blockdev-add a.b=1             -> dotted keys build nested objects
//   !x-oob-test lock=false         -> a leading "!" sends the command with exec-oob
//   {"execute": ...}               -> a line starting with "{" is sent as it is
// Completion of command and argument names comes from query-qmp-schema; with --hmp lines go
// through human-monitor-command and complete from HMP's own help.

import { appendFileSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as readline from "node:readline";
import { QmpClient, type QmpEvent, type QmpReply } from "./client.js";
import { toQmpJson } from "./json-writer.js";

export interface ShellOptions {
  hmp: boolean;
  negotiate: boolean;
  pretty: boolean;
}

const HISTORY_FILE = join(homedir(), ".minivm-qmp-history");
const HISTORY_MAX = 1000;

function parseValue(text: string): unknown {
  if (text === "true") return true;
  if (text === "false") return false;
  if (text === "null") return null;
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text)) return Number(text);
  if (text.startsWith("{") || text.startsWith("[")) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

/** Parse `cmd k=v a.b=v` into a QMP request; throws with a message on malformed input. */
export function parseShellLine(line: string): { execute: string; arguments: Record<string, unknown>; oob: boolean } {
  let rest = line.trim();
  let oob = false;
  if (rest.startsWith("!")) {
    oob = true;
    rest = rest.slice(1).trim();
  }
  const words = rest.split(/\s+/).filter((w) => w.length > 0);
  const name = words.shift();
  if (name === undefined) throw new Error("empty command");
  const args: Record<string, unknown> = {};
  for (const w of words) {
    const eq = w.indexOf("=");
    if (eq <= 0) throw new Error(`argument '${w}' is not of the form key=value`);
    const path = w.slice(0, eq).split(".");
    let obj = args;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i] as string;
      const next = obj[k];
      if (next === undefined) obj[k] = {};
      else if (typeof next !== "object" || next === null || Array.isArray(next)) throw new Error(`'${path.slice(0, i + 1).join(".")}' is already a value`);
      obj = obj[k] as Record<string, unknown>;
    }
    obj[path[path.length - 1] as string] = parseValue(w.slice(eq + 1));
  }
  return { execute: name, arguments: args, oob };
}

interface SchemaEntry {
  name: string;
  "meta-type": string;
  "arg-type"?: string;
  members?: Array<{ name: string }>;
}

/** Command names and, per command, its argument names, from query-qmp-schema. */
export function completionTable(schema: SchemaEntry[]): Map<string, string[]> {
  const byName = new Map(schema.map((e) => [e.name, e]));
  const table = new Map<string, string[]>();
  for (const e of schema) {
    if (e["meta-type"] !== "command") continue;
    const arg = e["arg-type"] !== undefined ? byName.get(e["arg-type"]) : undefined;
    table.set(e.name, (arg?.members ?? []).map((m) => m.name));
  }
  return table;
}

export function completeLine(line: string, table: Map<string, string[]>): [string[], string] {
  const prefixBang = line.startsWith("!") ? "!" : "";
  const body = line.slice(prefixBang.length);
  const words = body.split(/\s+/);
  if (words.length <= 1) {
    const partial = words[0] ?? "";
    const hits = [...table.keys()].filter((c) => c.startsWith(partial)).sort();
    return [hits.map((h) => prefixBang + h), line];
  }
  const args = table.get(words[0] ?? "") ?? [];
  const partial = words[words.length - 1] ?? "";
  const hits = args.filter((a) => a.startsWith(partial)).map((a) => `${a}=`);
  return [hits, partial];
}

function loadHistory(): string[] {
  try {
    return readFileSync(HISTORY_FILE, "utf8").split("\n").filter((l) => l.length > 0).slice(-HISTORY_MAX).reverse();
  } catch {
    return [];
  }
}

export async function shellMain(address: string, options: ShellOptions): Promise<number> {
  let client: QmpClient;
  try {
    client = await QmpClient.connect(address, { negotiate: options.negotiate });
  } catch (e) {
    process.stderr.write(`minivm qmp: cannot connect to ${address}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  const v = client.greeting.QMP.version;
  const out = process.stdout;
  const fmt = (x: unknown): string => (options.pretty ? JSON.stringify(x, null, 4) : toQmpJson(x));
  out.write(`Welcome to the QMP low-level shell!\nConnected to ${v.package} (QEMU ${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro} compatible)\n`);

  let table = new Map<string, string[]>();
  let hmpWords: string[] = [];
  if (options.negotiate) {
    try {
      if (options.hmp) {
        const help = (await client.execute("human-monitor-command", { "command-line": "help" })) as string;
        const info = (await client.execute("human-monitor-command", { "command-line": "info" })) as string;
        hmpWords = [...help.split("\r\n"), ...info.split("\r\n")]
          .map((l) => l.split(" -- ")[0]?.trim() ?? "")
          .flatMap((l) => (l.startsWith("info ") ? [l.split(/\s+/).slice(0, 2).join(" ")] : (l.split(/\s+/)[0] ?? "").split("|")))
          .filter((w) => w.length > 0);
      } else {
        table = completionTable((await client.execute("query-qmp-schema")) as SchemaEntry[]);
      }
    } catch {
      // A server without introspection still gets a shell, just without completion.
    }
  }

  const rl = readline.createInterface({
    input: process.stdin,
    output: out,
    terminal: process.stdin.isTTY === true,
    history: loadHistory(),
    historySize: HISTORY_MAX,
    completer: (line: string): [string[], string] =>
      options.hmp ? [hmpWords.filter((w) => w.startsWith(line)), line] : completeLine(line, table),
  });
  const prompt = options.hmp ? "(minivm-hmp) " : "(minivm) ";
  rl.setPrompt(prompt);

  const printAbovePrompt = (text: string): void => {
    if (process.stdin.isTTY === true) {
      readline.clearLine(out, 0);
      readline.cursorTo(out, 0);
      out.write(text + "\n");
      rl.prompt(true);
    } else {
      out.write(text + "\n");
    }
  };
  client.onEvent = (e: QmpEvent) => printAbovePrompt(fmt(e));

  const connectionGone = client.closed().then(() => {
    printAbovePrompt("Connection closed by the server.");
    rl.close();
  });

  rl.prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    if (line.length === 0) {
      rl.prompt();
      continue;
    }
    try {
      appendFileSync(HISTORY_FILE, line + "\n");
    } catch {
      // history is a convenience
    }
    try {
      let reply: QmpReply | null;
      if (options.hmp) {
        reply = await client.executeRaw("human-monitor-command", { "command-line": line });
        if ("return" in reply && typeof reply.return === "string") {
          out.write(reply.return.replace(/\r\n/g, "\n"));
          rl.prompt();
          continue;
        }
      } else if (line.startsWith("{")) {
        reply = await client.sendRaw(line + "\n");
      } else {
        const req = parseShellLine(line);
        reply = await client.executeRaw(req.execute, req.arguments, req.oob);
      }
      if (reply !== null) {
        const { id: _id, ...shown } = reply as QmpReply & { id?: unknown };
        out.write(fmt(line.startsWith("{") ? reply : shown) + "\n");
      }
    } catch (e) {
      out.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
      if (e instanceof Error && e.message === "QMP connection closed") break;
    }
    rl.prompt();
  }
  client.close();
  await Promise.race([connectionGone, Promise.resolve()]);
  return 0;
}
