// Differential test: the same raw bytes go to a real QEMU 7.2 QMP monitor and to
// minivm's JsonStreamer + toQmpJson, and the replies must agree: the desc text of
// every parse error, and the "id" member exactly as QEMU echoed it.  QEMU writes
// object members in hash order, so members are compared by their text, not lines.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsonStreamer, type JsonResult } from "../../src/qmp/json-streamer.js";
import { toQmpJson } from "../../src/qmp/json-writer.js";

const QEMU = "qemu-system-riscv32";
const haveQemu = spawnSync("which", [QEMU]).status === 0;
const requireInterop = process.env.MINIVM_REQUIRE_INTEROP === "1";
const REPLY_TIMEOUT_MS = 30_000;

/** One row: bytes written to the monitor (each element a separate write). */
interface Case {
  name: string;
  writes: (string | Buffer)[];
  slow?: boolean;
}

const latin1 = (s: string): Buffer => Buffer.from(s, "latin1");
const nosuch = (id: string): string => `{"execute":"nosuch","id":${id}}`;
const MiB = 1024 * 1024;

const CASES: Case[] = [
  { name: "integer id", writes: [nosuch("1")] },
  { name: "float id written as %.17g", writes: [nosuch("1.5e3")] },
  { name: "negative zero double", writes: [nosuch("-0.0")] },
  { name: "integer minus zero", writes: [nosuch("-0")] },
  { name: "0.1 with 17 digits", writes: [nosuch("0.1")] },
  { name: "exponent form", writes: [nosuch("1e300")] },
  { name: "small exponent form", writes: [nosuch("-1.25E-7")] },
  { name: "overflow to inf", writes: [nosuch("1e400")] },
  { name: "overflow to -inf", writes: [nosuch("-1e400")] },
  { name: "uint64 max", writes: [nosuch("18446744073709551615")] },
  { name: "int64 min", writes: [nosuch("-9223372036854775808")] },
  { name: "just past int64 max", writes: [nosuch("9223372036854775808")] },
  { name: "2^53 + 1", writes: [nosuch("9007199254740993")] },
  { name: "past uint64 becomes a double", writes: [nosuch("18446744073709551616")] },
  { name: "past int64 min becomes a double", writes: [nosuch("-9223372036854775809")] },
  { name: "UTF-8 string id", writes: [Buffer.from(nosuch('"é ü 中"'), "utf8")] },
  { name: "astral string id", writes: [Buffer.from(nosuch('"😀"'), "utf8")] },
  { name: "escapes in id", writes: [nosuch('"\\u0000 \\b\\f\\n\\r\\t\\"\\\\\\/ \\u007f \\u00e9 \\uD83D\\uDE00"')] },
  { name: "single quotes", writes: [`{'execute':'nosuch','id':'it\\'s "q"'}`] },
  { name: "null id", writes: [nosuch("null")] },
  { name: "true id", writes: [nosuch("true")] },
  { name: "false id", writes: [nosuch("false")] },
  { name: "array id", writes: [nosuch("[1, [2, {}], [], 'x']")] },
  { name: "object id", writes: [nosuch('{"a": [1, 2]}')] },
  { name: "whitespace and newlines inside", writes: [' {\n "execute" :\t"nosuch" ,\r\n "id" : 7 }\n'] },
  { name: "several messages in one write", writes: [`${nosuch("1")}${nosuch("2")}[]3 "x" null`] },
  {
    name: "split writes through a UTF-8 character",
    writes: [latin1('{"execute":"nos'), latin1('uch","id":"\xc3'), latin1('\xa9"}')],
  },
  { name: "duplicate key", writes: [`{"execute":"nosuch","id":1,"id":2}`] },
  { name: "invalid keyword", writes: ["[tru]"] },
  { name: "capitalised keyword is a stray", writes: ["[True]"] },
  { name: "missing colon", writes: ['{"a" 1}'] },
  { name: "missing separator in dict", writes: ['{"a":1 "b":2}'] },
  { name: "missing separator in list", writes: ["[1 2]"] },
  { name: "key not a string", writes: ["{1:2}"] },
  { name: "array as key", writes: ['{["k"]:2}'] },
  { name: "missing value", writes: ['{"a":}'] },
  { name: "trailing comma", writes: ["[1,]"] },
  { name: "top-level comma and colon", writes: [", :"] },
  { name: "unbalanced closers", writes: ["] }"] },
  { name: "invalid escape", writes: ['["\\x"]'] },
  { name: "lone high surrogate", writes: ['["\\ud800"]'] },
  { name: "high surrogate then non-surrogate", writes: ['["\\uD800\\u0041"]'] },
  { name: "lone low surrogate", writes: ['["\\udc00"]'] },
  { name: "short \\u escape", writes: ['["\\u12"]'] },
  { name: "noncharacter escape", writes: ['["\\ufdd0"]'] },
  { name: "raw noncharacter", writes: [latin1('["\xef\xbf\xbe"]')] },
  { name: "overlong UTF-8", writes: [latin1('["\xc1\xbf"]')] },
  { name: "modified UTF-8 NUL", writes: [latin1('{"execute":"nosuch","id":"a\xc0\x80b"}')] },
  { name: "truncated UTF-8", writes: [latin1('["\xe2\x82"]')] },
  { name: "stray @", writes: ["@"] },
  { name: "stray control character", writes: ["\x01"] },
  { name: "0xFF", writes: [latin1("\xff")] },
  { name: "0xFE inside a message", writes: [latin1('{"execute":"nosuch",\xfe"id":1}')] },
  { name: "NUL byte", writes: [latin1("\x00")] },
  { name: "NUL inside a string", writes: [latin1('["ab\x00cd"]')] },
  { name: "stray UTF-8 lead byte", writes: ["é"] },
  { name: "raw newline in a string", writes: ['{"execute":"nosuch","id":"a\nb"}'] },
  { name: "garbage then recovery", writes: [`{"execute":"nosuch","id":1 @@@ "junk" } ${nosuch("2")}`] },
  { name: "number errors", writes: ["[01] [1.] [-x] [1e] [1.5e+] [0e0]"] },
  { name: "lone minus", writes: ["-\n"] },
  { name: "unclosed object swallows the next line", writes: [`{"execute":"nosuch","id":1\n${nosuch("2")}\n}`] },
  { name: "unclosed string ended by a control character", writes: ['{"execute":"nosuch","id":"abc', "\x02"] },
  { name: "keyword longer than the 1024-byte message buffer", writes: [`[${"a".repeat(1100)}]`] },
  { name: "nesting 1024 accepted", writes: ["[".repeat(1024) + "]".repeat(1024)] },
  { name: "nesting 1025 rejected", writes: ["[".repeat(1025)] },
  { name: "mixed nesting 1025 rejected", writes: ["[{".repeat(512) + "["] },
  { name: "token count limit", writes: ["[" + "0,".repeat(1024 * 1024)] },
  { name: "non-ASCII inside a bad \\u escape", writes: [Buffer.from('["\\u1é"] ["\\u123é"]', "utf8")] },
  { name: "escape of a non-ASCII character", writes: [Buffer.from('["\\é"]', "utf8")] },
  { name: "UTF-8 kept in a stray token", writes: [Buffer.from('["é😀\x01', "utf8")] },
  { name: "0xFF in a string", writes: [latin1('["ab\xffcd"]')] },
  { name: "no interpolation on the wire", writes: ["[%d]"] },
  { name: "recovery skips tabs and quotes but stops at a carriage return", writes: ['@\t"x"\r{"execute":"nosuch","id":3}'] },
  { name: "bracket count goes negative inside a brace", writes: ["{]"] },
  { name: "brace count goes negative inside a bracket, then more", writes: ["[}] 1"] },
];

// QEMU's QMP monitor takes its input a few bytes per main-loop turn (about 6 s per
// MiB on a loaded 2-core machine), so the 64 MiB rows take minutes each; they run
// when MINIVM_SLOW_INTEROP=1.
if (process.env.MINIVM_SLOW_INTEROP === "1") {
  CASES.push(
    { name: "single token size limit", slow: true, writes: ['"' + "a".repeat(64 * MiB) + "\n"] },
    {
      name: "message token size limit",
      slow: true,
      writes: ['["' + "a".repeat(32 * MiB) + '","' + "b".repeat(32 * MiB) + '"]'],
    },
  );
}

/** Top-level members of one JSON object text, each as raw text. */
function members(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = text.indexOf("{") + 1;
  const skipString = (at: number): number => {
    let j = at + 1;
    while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
    return j + 1;
  };
  while (i < text.length) {
    while (text[i] === " " || text[i] === ",") i++;
    if (text[i] === "}") break;
    const keyEnd = skipString(i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = keyEnd;
    while (text[i] === ":" || text[i] === " ") i++;
    const start = i;
    let depth = 0;
    for (; i < text.length; i++) {
      const c = text[i];
      if (c === '"') i = skipString(i) - 1;
      else if (c === "{" || c === "[") depth++;
      else if ((c === "}" || c === "]") && depth-- === 0) break;
      else if (c === "," && depth === 0) break;
    }
    out.set(key, text.slice(start, i));
  }
  return out;
}

/** What QEMU must answer, predicted from minivm's streamer result. */
type Expected =
  | { kind: "error"; desc: string }
  | { kind: "nosuch"; id: string }
  | { kind: "sentinel"; id: string };

function predict(r: JsonResult): Expected {
  if (r.kind === "error") return { kind: "error", desc: toQmpJson(r.message) };
  const v = r.value;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return { kind: "error", desc: toQmpJson("QMP input must be a JSON object") };
  }
  const req = v as Record<string, unknown>;
  if (req.execute === "nosuch") return { kind: "nosuch", id: toQmpJson(req.id) };
  return { kind: "sentinel", id: toQmpJson(req.id) };
}

class Monitor {
  private buffered = "";
  private lines: string[] = [];
  private waiter: (() => void) | null = null;
  constructor(readonly sock: Socket) {
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      this.buffered += d;
      let nl: number;
      while ((nl = this.buffered.indexOf("\n")) >= 0) {
        this.lines.push(this.buffered.slice(0, nl).replace(/\r$/, ""));
        this.buffered = this.buffered.slice(nl + 1);
      }
      this.waiter?.();
    });
  }
  async nextLine(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.lines.shift() ?? null;
  }
  async write(data: string | Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => this.sock.write(data, (e) => (e ? reject(e) : resolve())));
  }
}

async function connectWhenReady(path: string, qemu: ChildProcess): Promise<Socket> {
  for (let attempt = 0; ; attempt++) {
    if (qemu.exitCode !== null) throw new Error(`${QEMU} exited with ${qemu.exitCode}`);
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(path);
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
    } catch (e) {
      if (attempt > 200) throw e;
      // The socket appears once QEMU has parsed its command line.
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe.skipIf(!haveQemu && !requireInterop)("JSON wire format against QEMU", () => {
  let dir = "";
  let qemu: ChildProcess | null = null;
  let mon: Monitor;
  const ours: Expected[] = [];
  const streamer = new JsonStreamer((r) => ours.push(predict(r)));

  beforeAll(async () => {
    if (!haveQemu) throw new Error(`${QEMU} is not installed and MINIVM_REQUIRE_INTEROP=1`);
    dir = mkdtempSync(join(tmpdir(), "minivm-json-"));
    const sockPath = join(dir, "q.sock");
    qemu = spawn(
      QEMU,
      ["-M", "virt", "-bios", "none", "-S", "-display", "none", "-nodefaults", "-qmp", `unix:${sockPath},server=on,wait=off`],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    mon = new Monitor(await connectWhenReady(sockPath, qemu));
    const greeting = await mon.nextLine(REPLY_TIMEOUT_MS);
    expect(greeting).toMatch(/^\{"QMP": /);
    await mon.write('{"execute":"qmp_capabilities"}');
    expect(await mon.nextLine(REPLY_TIMEOUT_MS)).toBe('{"return": {}}');
  });

  afterAll(() => {
    qemu?.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("has a table of at least 25 inputs", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  CASES.forEach((c, n) => {
    const timeout = c.slow ? 3_600_000 : 120_000;
    it(`agrees with QEMU on: ${c.name}`, { timeout }, async () => {
      const sentinel = `{"execute":"query-status","id":"sentinel-${n}"}`;
      const writes = [...c.writes, sentinel].map((w) => (typeof w === "string" ? Buffer.from(w, "latin1") : w));
      ours.length = 0;
      for (const w of writes) streamer.feed(w);
      const sentinelId = toQmpJson(`sentinel-${n}`);
      const shown = (s: string): string => (s.length > 200 ? `${s.slice(0, 200)}... (${s.length} chars)` : s);
      const input = shown(Buffer.concat(writes).toString("latin1"));
      // A table row that leaves a bracket open would swallow the sentinel.
      expect(ours.at(-1), `minivm swallowed the sentinel for input ${JSON.stringify(input)}`).toEqual({
        kind: "sentinel",
        id: sentinelId,
      });

      for (const w of writes) await mon.write(w);
      const theirs: string[] = [];
      for (;;) {
        const line = await mon.nextLine(c.slow ? timeout : REPLY_TIMEOUT_MS);
        if (line === null) {
          throw new Error(`QEMU did not answer the sentinel for input ${JSON.stringify(input)}; got ${theirs.map(shown).join("\n")}`);
        }
        theirs.push(line);
        if (members(line).get("id") === sentinelId) break;
      }

      const mismatch = (i: number, why: string): string =>
        `input ${JSON.stringify(input)}: reply ${i}: ${why}\nQEMU:   ${shown(theirs[i] ?? "(none)")}\nminivm: ${shown(JSON.stringify(ours[i] ?? "(none)"))}`;
      expect(theirs.length, mismatch(Math.min(theirs.length, ours.length), "reply count differs")).toBe(ours.length);
      ours.forEach((want, i) => {
        const got = members(theirs[i]);
        if (want.kind === "error") {
          expect(got.has("id"), mismatch(i, "unexpected id")).toBe(false);
          expect(members(got.get("error") ?? "{}").get("desc"), mismatch(i, "desc differs")).toBe(want.desc);
        } else {
          expect(got.get("id"), mismatch(i, "id differs")).toBe(want.id);
        }
      });
    });
  });
});
