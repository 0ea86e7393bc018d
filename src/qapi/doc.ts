// Documentation comments: a '##' ... '##' block (qapi-code-gen.rst,
// "Documentation comments"; QEMU's QAPIDoc in scripts/qapi/parser.py).
// "# @Name:" on the first line makes it the documentation of the definition
// that follows; then come "# @member:" sections, a "Features:" line with
// "# @feature:" sections, and finally tagged sections ("Returns:", "Since:",
// "Notes:", ...). Free-form blocks ("# = Heading", prose) document no symbol.
// Indentation: QEMU 7.2 wants a section's continuation lines indented at
// least as far as the text after its "@name:" or "Tag:" (not at all when that
// line holds only the name) and removes that much; later QEMU versions want
// four spaces, the style minivm's own schema is written in. Both are accepted:
// a line indented less than both is refused with QEMU 7.2's message, which
// names 7.2's column, so every schema QEMU 7.2 accepts or refuses for
// indentation gets 7.2's verdict except one indented 4 or more spaces but
// short of 7.2's column.

import { QapiError, SourceInfo } from "./source.js";

export interface DocSection {
  readonly name: string | null;
  text: string;
}

export interface DocArg {
  readonly name: string;
  text: string;
  /** Set once the checker finds the member or feature this describes. */
  connected: boolean;
}

type Part = "body" | "args" | "features" | "various";

/** The continuation indent QEMU 8 and later use, which minivm's schema follows. */
const LATER_QEMU_INDENT = 4;

const SECTION_TAGS = new Set(["Returns:", "Since:", "Note:", "Notes:", "Example:", "Examples:", "TODO:"]);

export class QapiDoc {
  symbol: string | null = null;
  body = "";
  readonly args = new Map<string, DocArg>();
  readonly features = new Map<string, DocArg>();
  readonly sections: DocSection[] = [];
  private current: DocSection | DocArg | null = null;
  /** How far the current section's continuation lines must be indented (0 for the body). */
  private indent = 0;
  private part: Part = "body";
  private fail: (msg: string) => QapiError = (msg) => new QapiError(this.info, msg);

  constructor(readonly info: SourceInfo) {}

  /**
   * Adds one comment line ("#" or "# text"). FAIL makes an error located at
   * that line, where QEMU reports documentation syntax errors.
   */
  append(raw: string, fail: (msg: string) => QapiError): void {
    this.fail = fail;
    let line = raw.slice(1);
    if (line === "") {
      this.appendFreeform("");
      return;
    }
    if (line[0] !== " ") throw fail("missing space after #");
    line = line.slice(1);
    switch (this.part) {
      case "body":
        return this.appendBody(line);
      case "args":
      case "features":
        return this.appendSymbolLine(line, this.part);
      case "various":
        return this.appendVarious(line);
    }
  }

  /** The closing '##' was reached. */
  endComment(fail: (msg: string) => QapiError): void {
    this.fail = fail;
    this.endSection();
  }

  private appendBody(line: string): void {
    const name = line.split(" ", 1)[0]!;
    if (this.symbol === null && this.body === "" && line.startsWith("@")) {
      if (!line.endsWith(":")) throw this.fail("line should end with ':'");
      this.symbol = line.slice(1, -1);
      if (!this.symbol) throw this.fail("name required after '@'");
    } else if (this.symbol !== null) {
      if (name.startsWith("@") && name.endsWith(":")) {
        this.part = "args";
        this.appendSymbolLine(line, "args");
      } else if (line === "Features:") {
        this.part = "features";
      } else if (SECTION_TAGS.has(name)) {
        this.part = "various";
        this.appendVarious(line);
      } else {
        this.appendFreeform(line);
      }
    } else {
      this.appendFreeform(line);
    }
  }

  /** A line in the member ("args") or feature descriptions. */
  private appendSymbolLine(line: string, part: "args" | "features"): void {
    const name = line.split(" ", 1)[0]!;
    if (name.startsWith("@") && name.endsWith(":")) {
      const [header, text] = splitHeader(/^@\S*:\s*/, line);
      this.startSymbolSection(part === "args" ? this.args : this.features, name.slice(1, -1), text ? header : 0);
      this.appendFreeform(text ? " ".repeat(header) + text : text);
      return;
    }
    if (SECTION_TAGS.has(name)) {
      this.part = "various";
      this.appendVarious(line);
      return;
    }
    // An unindented line after a blank line ends the descriptions.
    if (this.current && this.current.text.endsWith("\n\n") && line !== "" && !/^\s/.test(line)) {
      if (part === "args" && line === "Features:") {
        this.part = "features";
      } else {
        this.startSection(null);
        this.part = "various";
        this.appendVarious(line);
      }
      return;
    }
    this.appendFreeform(line);
  }

  private appendVarious(line: string): void {
    const name = line.split(" ", 1)[0]!;
    if (name.startsWith("@") && name.endsWith(":")) {
      throw this.fail(`'${name}' can't follow '${this.sections[0]?.name ?? "None"}' section`);
    }
    if (SECTION_TAGS.has(name)) {
      const [header, text] = splitHeader(/^\S*:\s*/, line);
      this.startSection(name.slice(0, -1), text ? header : 0);
      line = text ? " ".repeat(header) + text : text;
    }
    this.appendFreeform(line);
  }

  private startSymbolSection(map: Map<string, DocArg>, name: string, indent: number): void {
    if (!name) throw this.fail("invalid parameter name");
    if (map.has(name)) throw this.fail(`'${name}' parameter name duplicated`);
    this.endSection();
    const arg: DocArg = { name, text: "", connected: false };
    map.set(name, arg);
    this.current = arg;
    this.indent = indent;
  }

  private startSection(name: string | null, indent = 0): void {
    if ((name === "Returns" || name === "Since") && this.sections.some((s) => s.name === name)) {
      throw this.fail(`duplicated '${name}' section`);
    }
    this.endSection();
    const section: DocSection = { name, text: "" };
    this.sections.push(section);
    this.current = section;
    this.indent = indent;
  }

  private endSection(): void {
    const cur = this.current;
    if (!cur) {
      this.body = this.body.trim();
      return;
    }
    cur.text = cur.text.trim();
    // Every section but the body needs text, a member's or feature's too (QEMU 7.2's
    // QAPIDoc._switch_section); anonymous sections are only made for a line of text.
    if (cur.text === "" && cur.name !== null) throw this.fail(`empty doc section '${cur.name}'`);
    this.current = null;
  }

  private appendFreeform(line: string): void {
    const m = /^(@\S+:)/.exec(line);
    if (m) throw this.fail(`'${m[1]}' not allowed in free-form documentation`);
    // Blank lines may have any indentation (QEMU's QAPIDoc.Section.append).
    if (line !== "") {
      const indent = /^\s*/.exec(line)![0].length;
      if (indent >= this.indent) line = line.slice(this.indent);
      else if (indent >= LATER_QEMU_INDENT) line = line.slice(LATER_QEMU_INDENT);
      else throw this.fail(`unexpected de-indent (expected at least ${this.indent} spaces)`);
    }
    if (this.current) this.current.text += line.trimEnd() + "\n";
    else this.body += line.trimEnd() + "\n";
  }

  /** Every feature of a documented definition must be described. */
  connectFeature(name: string, info: SourceInfo | null): void {
    const arg = this.features.get(name);
    if (!arg) throw new QapiError(info, `feature '${name}' lacks documentation`);
    arg.connected = true;
  }

  /** An undocumented member gets an empty description, as QEMU's connect_member gives it. */
  connectMember(name: string): void {
    let arg = this.args.get(name);
    if (!arg) {
      arg = { name, text: "", connected: false };
      this.args.set(name, arg);
    }
    arg.connected = true;
  }

  /** Checks that need the definition the documentation belongs to. */
  checkExpr(isCommand: boolean): void {
    if (!isCommand && this.sections.some((s) => s.name === "Returns")) {
      throw new QapiError(this.info, "'Returns:' is only valid for commands");
    }
  }

  /** Documented members and features must exist (QEMU's QAPIDoc.check). */
  check(): void {
    const bogus = (map: Map<string, DocArg>, what: string): void => {
      const names = [...map.values()].filter((a) => !a.connected).map((a) => a.name);
      if (names.length > 0) {
        throw new QapiError(
          this.info,
          `documented ${what}${names.length > 1 ? "s" : ""} '${names.join("', '")}' ${names.length > 1 ? "do" : "does"} not exist`,
        );
      }
    };
    bogus(this.args, "member");
    bogus(this.features, "feature");
  }
}

/**
 * Splits "@name:   text" or "Tag:   text" at the end of HEADER's match: the
 * length of that prefix (the indentation the text's later lines need) and the text.
 */
function splitHeader(header: RegExp, line: string): [number, string] {
  const n = header.exec(line)![0].length;
  return [n, line.slice(n)];
}
