// Tokens of the QAPI schema language (docs/devel/qapi-code-gen.rst, "Schema
// syntax"): JSON-like, but strings are single-quoted printable ASCII with only
// the \\ escape, '#' starts a comment, and there are no numbers or null.
// Like QEMU's parser.py the lexer is pulled one token at a time and tracks the
// line so errors can point at line and column.

import { QapiError, SourceInfo } from "./source.js";

/** '{' '}' ':' ',' '[' ']', "'" (string), 't'/'f' (booleans), '#' (comment), null at EOF. */
export type TokenKind = "{" | "}" | ":" | "," | "[" | "]" | "'" | "t" | "f" | "#" | null;

export class Lexer {
  readonly src: string;
  tok: TokenKind = null;
  val: string | boolean | null = null;
  info: SourceInfo;
  /** Offset of the current token's first character. */
  pos = 0;
  private cursor = 0;
  private linePos = 0;

  constructor(text: string, info: SourceInfo) {
    this.src = text === "" || !text.endsWith("\n") ? text + "\n" : text;
    this.info = info;
  }

  /** The current token; a method so callers re-read it after accept(). */
  peek(): TokenKind {
    return this.tok;
  }

  /** An error at the current token, with QEMU's column (tabs stop every 8). */
  error(msg: string): QapiError {
    let col = 1;
    for (const ch of this.src.slice(this.linePos, this.pos)) {
      col = ch === "\t" ? ((col + 7) % 8) + 1 : col + 1;
    }
    return new QapiError(this.info, msg, col);
  }

  /**
   * Advance to the next token. Comments are skipped unless skipComment is
   * false; a comment starting with '##' (a doc comment) is always returned.
   */
  accept(skipComment = true): void {
    for (;;) {
      const ch = this.src[this.cursor];
      this.pos = this.cursor;
      this.cursor++;
      this.val = null;
      if (ch === "#") {
        let skip = skipComment;
        if (this.src[this.cursor] === "#") skip = false;
        this.cursor = this.src.indexOf("\n", this.cursor);
        if (!skip) {
          this.tok = "#";
          this.val = this.src.slice(this.pos, this.cursor);
          return;
        }
      } else if (ch === "{" || ch === "}" || ch === ":" || ch === "," || ch === "[" || ch === "]") {
        this.tok = ch;
        return;
      } else if (ch === "'") {
        this.tok = "'";
        this.val = this.lexString();
        return;
      } else if (this.src.startsWith("true", this.pos)) {
        this.tok = "t";
        this.val = true;
        this.cursor += 3;
        return;
      } else if (this.src.startsWith("false", this.pos)) {
        this.tok = "f";
        this.val = false;
        this.cursor += 4;
        return;
      } else if (ch === "\n") {
        if (this.cursor === this.src.length) {
          this.tok = null;
          return;
        }
        this.info = this.info.nextLine();
        this.linePos = this.cursor;
      } else if (ch === undefined) {
        this.tok = null;
        return;
      } else if (!/\s/.test(ch)) {
        const m = /^[^[\]{}:,\s'"]+/.exec(this.src.slice(this.pos));
        throw this.error(`stray '${m ? m[0] : ch}'`);
      }
    }
  }

  private lexString(): string {
    let s = "";
    let esc = false;
    for (;;) {
      const ch = this.src[this.cursor];
      this.cursor++;
      if (ch === "\n" || ch === undefined) throw this.error("missing terminating \"'\"");
      if (esc) {
        // Only \\ is recognised: the schema has no use for other escapes.
        if (ch !== "\\") throw this.error(`unknown escape \\${ch}`);
        esc = false;
      } else if (ch === "\\") {
        esc = true;
        continue;
      } else if (ch === "'") {
        return s;
      }
      const code = ch.charCodeAt(0);
      if (code < 32 || code >= 127) throw this.error("funny character in string");
      s += ch;
    }
  }
}
