// `minivm qmp ADDRESS`: an interactive QMP shell in qmp-shell's syntax.
//   query-status                   -> {"execute": "query-status"}
//   x-oob-test lock=true           -> arguments parsed as JSON where they parse, else strings
//   blockdev-add a.b=1             -> dotted keys build nested objects
//   !x-oob-test lock=false         -> a leading "!" sends the command with exec-oob
//   {"execute": ...}               -> a line starting with "{" is sent as it is (if it is whole JSON)
//   human-monitor-command command-line="info status"  -> quotes keep spaces in a value
// Every line goes out the moment it is typed, numbered with an "id"; replies and events are
// printed as they arrive, so an out-of-band reply is seen overtaking an in-band one.
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

/** Split a line into words as a shell would: spaces separate, quotes group, `\\` escapes. */
export function splitWords(line: string): Array<{ text: string; quoted: boolean; raw: string }> {
  const words: Array<{ text: string; quoted: boolean; raw: string }> = [];
  let cur = "";
  let start = 0;
  let inWord = false;
  let quoted = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quote !== null) {
      if (ch === quote) quote = null;
      else if (ch === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      if (!inWord) start = i;
      quote = ch;
      inWord = true;
      quoted = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      if (!inWord) start = i;
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push({ text: cur, quoted, raw: line.slice(start, i) });
      cur = "";
      inWord = false;
      quoted = false;
    } else {
      if (!inWord) start = i;
      cur += ch;
      inWord = true;
    }
  }
  if (quote !== null) throw new Error(`unterminated ${quote} quote`);
  if (inWord) words.push({ text: cur, quoted, raw: line.slice(start) });
  return words;
}

/** Parse `cmd k=v a.b=v k="a b"` into a QMP request; throws with a message on malformed input. */
export function parseShellLine(line: string): { execute: string; arguments: Record<string, unknown>; oob: boolean } {
  let rest = line.trim();
  let oob = false;
  if (rest.startsWith("!")) {
    oob = true;
    rest = rest.slice(1).trim();
  }
  const words = splitWords(rest);
  const name = words.shift()?.text;
  if (name === undefined) throw new Error("empty command");
  const args: Record<string, unknown> = {};
  for (const w of words) {
    const eq = w.text.indexOf("=");
    if (eq <= 0) throw new Error(`argument '${w.text}' is not of the form key=value`);
    const path = w.text.slice(0, eq).split(".");
    let obj = args;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i] as string;
      const next = obj[k];
      if (next === undefined) obj[k] = {};
      else if (typeof next !== "object" || next === null || Array.isArray(next)) throw new Error(`'${path.slice(0, i + 1).join(".")}' is already a value`);
      obj = obj[k] as Record<string, unknown>;
    }
    const valueText = w.text.slice(eq + 1);
    // A JSON array or object keeps its own quotes (qmp-shell reads `caps=[{"a":1}]` as JSON);
    // any other quoted value is a string, whatever it looks like.
    const rawValue = w.raw.slice(w.raw.indexOf("=") + 1);
    const json = rawValue.startsWith("[") || rawValue.startsWith("{") ? parseValue(rawValue) : undefined;
    obj[path[path.length - 1] as string] = json !== undefined && typeof json !== "string" ? json : w.quoted ? valueText : parseValue(valueText);
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
  const interactive = process.stdin.isTTY === true;
  const fmt = (x: unknown): string => (options.pretty ? JSON.stringify(x, null, 4) : toQmpJson(x));
  const qemuVersion = `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}`;
  // qmp-shell's two greetings: the HMP shell says so.
  out.write(
    options.hmp
      ? `Welcome to the HMP shell!\nConnected to ${v.package} (QEMU ${qemuVersion} compatible)\n\n`
      : `Welcome to the QMP low-level shell!\nConnected to ${v.package} (QEMU ${qemuVersion} compatible)\n`,
  );

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
    terminal: interactive,
    history: interactive ? loadHistory() : [],
    historySize: HISTORY_MAX,
    completer: (line: string): [string[], string] =>
      options.hmp ? [hmpWords.filter((w) => w.startsWith(line)), line] : completeLine(line, table),
  });
  rl.setPrompt(options.hmp ? "(minivm-hmp) " : "(minivm) ");
  const prompt = (): void => {
    if (interactive) rl.prompt(true);
  };

  /** Print a message that arrived, above the line being typed. */
  const show = (text: string): void => {
    if (interactive) {
      readline.clearLine(out, 0);
      readline.cursorTo(out, 0);
      out.write(text.endsWith("\n") ? text : text + "\n");
      prompt();
    } else {
      out.write(text.endsWith("\n") ? text : text + "\n");
    }
  };

  // Requests sent and not yet answered: at the end of input the shell waits for them.
  let outstanding = 0;
  let settled: (() => void) | null = null;
  const answered = (): void => {
    outstanding--;
    if (outstanding === 0) settled?.();
  };
  let nextId = 1;
  let closing = false;

  // Everything after the set-up arrives here, in the order the server sent it.
  client.onLine = (line: string): void => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      show(line);
      return;
    }
    if ("event" in msg) {
      show(options.pretty ? fmt(msg) : line);
      return;
    }
    // HMP replies are printed by their own request below; QMP replies as they are.
    if (options.hmp && !(typeof msg.id === "number")) return;
    show(options.pretty ? fmt(msg) : line);
    answered();
  };

  const sendHmp = (line: string): void => {
    outstanding++;
    void client.executeRaw("human-monitor-command", { "command-line": line }).then(
      (reply) => {
        if ("return" in reply && typeof reply.return === "string") {
          if (reply.return.length > 0) show(reply.return.replace(/\r\n/g, "\n"));
        } else show(fmt(reply));
        answered();
      },
      () => answered(),
    );
  };

  const sendLine = (line: string): void => {
    if (options.hmp) {
      sendHmp(line);
      return;
    }
    let text: string;
    if (line.startsWith("{")) {
      // A line is one message: an unfinished object would leave the server waiting for the
      // rest, and every later line would become part of it.
      try {
        JSON.parse(line);
      } catch (e) {
        show(`Error: not a complete JSON value (${e instanceof Error ? e.message : String(e)}); nothing sent`);
        return;
      }
      text = line;
    } else {
      const req = parseShellLine(line);
      const msg: Record<string, unknown> = req.oob ? { "exec-oob": req.execute } : { execute: req.execute };
      if (Object.keys(req.arguments).length > 0) msg.arguments = req.arguments;
      msg.id = nextId++;
      text = toQmpJson(msg);
    }
    outstanding++;
    client.sendRaw(text + "\n", false).catch(() => undefined);
  };

  let resolveDone: (status: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));
  const finish = (message: string | null): void => {
    if (closing) return;
    closing = true;
    if (message !== null) show(message);
    rl.close();
    client.close();
    resolveDone(0);
  };

  void client.closed().then(() => finish("Connection closed by the server."));

  rl.on("line", (raw: string) => {
    const line = raw.trim();
    if (line.length > 0) {
      if (interactive) {
        try {
          appendFileSync(HISTORY_FILE, line + "\n");
        } catch {
          // history is a convenience
        }
      }
      try {
        sendLine(line);
      } catch (e) {
        show(`Error: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    prompt();
  });
  // Ctrl-C: forget a half-typed line; on an empty one, leave.
  rl.on("SIGINT", () => {
    if (rl.line.length > 0) {
      out.write("^C\n");
      rl.write(null, { ctrl: true, name: "u" });
      prompt();
      return;
    }
    out.write("\n");
    finish(null);
  });
  // End of input (Ctrl-D, or the end of a pipe): wait for the replies still due, then go.
  rl.on("close", () => {
    if (closing) return;
    if (interactive) out.write("\n");
    if (outstanding === 0) finish(null);
    else settled = () => finish(null);
  });

  prompt();
  return done;
}
