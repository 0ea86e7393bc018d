// Parses a QAPI schema file into expressions (scripts/qapi/parser.py):
// handles 'include' (relative to the including file, each file at most once,
// loops rejected) and 'pragma' directives, and attaches doc comments to the
// definition that follows them.

import { readFileSync } from "node:fs";
import * as path from "node:path";
import { QapiDoc } from "./doc.js";
import { Lexer } from "./lexer.js";
import { isDict, newPragma, QapiError, SourceInfo } from "./source.js";
import type { QDict, QExpr } from "./source.js";

export interface ParsedExpr {
  readonly expr: QDict;
  readonly info: SourceInfo;
  readonly doc: QapiDoc | null;
}

/** An 'include' directive, repeated ones too: QEMU makes each an entity of the including module. */
export interface ParsedInclude {
  /** The included file's name, relative to the including file's directory as written. */
  readonly fname: string;
  readonly info: SourceInfo;
  /** How many definitions came before it. */
  readonly position: number;
}

export interface ParsedSchema {
  readonly exprs: ParsedExpr[];
  readonly docs: QapiDoc[];
  readonly includes: ParsedInclude[];
}

/** Reads and parses FNAME and everything it includes. */
export function parseSchema(fname: string): ParsedSchema {
  let text: string;
  try {
    text = readSource(fname);
  } catch (err) {
    throw new QapiError(null, `can't read schema file '${fname}': ${strerror(err)}`);
  }
  const out: ParsedSchema = { exprs: [], docs: [], includes: [] };
  new FileParser(fname, text, new Set(), null, out).parse();
  return out;
}

/** Like Python's text mode, which QEMU reads schemas in: any newline becomes "\n". */
function readSource(fname: string): string {
  return readFileSync(fname, "utf8").replace(/\r\n?/g, "\n");
}

function strerror(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "No such file or directory";
  if (code === "EACCES") return "Permission denied";
  if (code === "EISDIR") return "Is a directory";
  return err instanceof Error ? err.message : String(err);
}

class FileParser {
  private readonly lx: Lexer;

  constructor(
    private readonly fname: string,
    text: string,
    private readonly included: Set<string>,
    inclInfo: SourceInfo | null,
    private readonly out: ParsedSchema,
  ) {
    included.add(path.resolve(fname));
    const pragma = inclInfo ? inclInfo.pragma : newPragma();
    this.lx = new Lexer(text, new SourceInfo(fname, 1, inclInfo, pragma));
  }

  parse(): void {
    const lx = this.lx;
    let curDoc: QapiDoc | null = null;
    lx.accept();
    while (lx.peek() !== null) {
      const info = lx.info;
      if (lx.peek() === "#") {
        rejectExprDoc(curDoc);
        for (const d of this.getDoc(info)) {
          this.out.docs.push(d);
          curDoc = d;
        }
        continue;
      }
      const expr = this.getExpr();
      if (!isDict(expr)) throw new QapiError(info, "top-level expression must be an object");
      if (expr.has("include")) {
        rejectExprDoc(curDoc);
        if (expr.size !== 1) throw new QapiError(info, "invalid 'include' directive");
        const include = expr.get("include");
        if (typeof include !== "string") throw new QapiError(info, "value of 'include' must be a string");
        const inclFname = path.join(path.dirname(this.fname), include);
        this.out.includes.push({ fname: inclFname, info, position: this.out.exprs.length });
        this.include(include, info, inclFname);
      } else if (expr.has("pragma")) {
        rejectExprDoc(curDoc);
        if (expr.size !== 1) throw new QapiError(info, "invalid 'pragma' directive");
        const pragma = expr.get("pragma");
        if (!isDict(pragma)) throw new QapiError(info, "value of 'pragma' must be an object");
        for (const [name, value] of pragma) setPragma(name, value, info);
      } else {
        if (curDoc && !curDoc.symbol) {
          throw new QapiError(curDoc.info, "definition documentation required");
        }
        this.out.exprs.push({ expr, info, doc: curDoc });
      }
      curDoc = null;
    }
    rejectExprDoc(curDoc);
  }

  private include(include: string, info: SourceInfo, inclFname: string): void {
    const abs = path.resolve(inclFname);
    for (let inf: SourceInfo | null = info; inf; inf = inf.parent) {
      if (abs === path.resolve(inf.fname)) throw new QapiError(info, `inclusion loop for ${include}`);
    }
    if (this.included.has(abs)) return;
    let text: string;
    try {
      text = readSource(inclFname);
    } catch (err) {
      throw new QapiError(info, `can't read include file '${inclFname}': ${strerror(err)}`);
    }
    new FileParser(inclFname, text, this.included, info, this.out).parse();
  }

  private getMembers(): QDict {
    const lx = this.lx;
    const expr: QDict = new Map();
    if (lx.peek() === "}") {
      lx.accept();
      return expr;
    }
    if (lx.peek() !== "'") throw lx.error("expected string or '}'");
    for (;;) {
      const key = lx.val as string;
      lx.accept();
      if (lx.peek() !== ":") throw lx.error("expected ':'");
      lx.accept();
      if (expr.has(key)) throw lx.error(`duplicate key '${key}'`);
      expr.set(key, this.getExpr());
      if (lx.peek() === "}") {
        lx.accept();
        return expr;
      }
      if (lx.peek() !== ",") throw lx.error("expected ',' or '}'");
      lx.accept();
      if (lx.peek() !== "'") throw lx.error("expected string");
    }
  }

  private getValues(): QExpr[] {
    const lx = this.lx;
    const expr: QExpr[] = [];
    if (lx.peek() === "]") {
      lx.accept();
      return expr;
    }
    if (!"{['tf".includes(lx.peek() ?? "?")) {
      throw lx.error("expected '{', '[', ']', string, or boolean");
    }
    for (;;) {
      expr.push(this.getExpr());
      if (lx.peek() === "]") {
        lx.accept();
        return expr;
      }
      if (lx.peek() !== ",") throw lx.error("expected ',' or ']'");
      lx.accept();
    }
  }

  private getExpr(): QExpr {
    const lx = this.lx;
    if (lx.peek() === "{") {
      lx.accept();
      return this.getMembers();
    }
    if (lx.peek() === "[") {
      lx.accept();
      return this.getValues();
    }
    if (lx.peek() === "'" || lx.peek() === "t" || lx.peek() === "f") {
      const v = lx.val as string | boolean;
      lx.accept();
      return v;
    }
    throw lx.error("expected '{', '[', string, or boolean");
  }

  private getDoc(info: SourceInfo): QapiDoc[] {
    const lx = this.lx;
    if (lx.val !== "##") throw lx.error("junk after '##' at start of documentation comment");
    const docs: QapiDoc[] = [];
    let cur = new QapiDoc(info);
    lx.accept(false);
    while (lx.peek() === "#") {
      const val = lx.val as string;
      if (val.startsWith("##")) {
        if (val !== "##") throw lx.error("junk after '##' at end of documentation comment");
        cur.endComment((msg) => lx.error(msg));
        docs.push(cur);
        lx.accept();
        return docs;
      }
      if (val.startsWith("# =")) {
        if (cur.symbol) throw lx.error("unexpected '=' markup in definition documentation");
        if (cur.body) {
          cur.endComment((msg) => lx.error(msg));
          docs.push(cur);
          cur = new QapiDoc(info);
        }
      }
      cur.append(val, (msg) => lx.error(msg));
      lx.accept(false);
    }
    throw lx.error("documentation comment must end with '##'");
  }
}

function rejectExprDoc(doc: QapiDoc | null): void {
  if (doc && doc.symbol) {
    throw new QapiError(doc.info, `documentation for '${doc.symbol}' is not followed by the definition`);
  }
}

function setPragma(name: string, value: QExpr, info: SourceInfo): void {
  const listStr = (): string[] => {
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
      throw new QapiError(info, `pragma ${name} must be a list of strings`);
    }
    return value as string[];
  };
  const pragma = info.pragma;
  switch (name) {
    case "doc-required":
      if (typeof value !== "boolean") throw new QapiError(info, "pragma 'doc-required' must be boolean");
      pragma.docRequired = value;
      break;
    case "command-name-exceptions":
      pragma.commandNameExceptions = listStr();
      break;
    case "command-returns-exceptions":
      pragma.commandReturnsExceptions = listStr();
      break;
    case "member-name-exceptions":
      pragma.memberNameExceptions = listStr();
      break;
    default:
      throw new QapiError(info, `unknown pragma '${name}'`);
  }
}
