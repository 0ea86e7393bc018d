// Documentation comments: a '##' ... '##' block (qapi-code-gen.rst,
// "Documentation comments"; QEMU's QAPIDoc in scripts/qapi/parser.py).
// "# @Name:" on the first line makes it the documentation of the definition
// that follows; then come "# @member:" sections, a "Features:" line with
// "# @feature:" sections, and finally tagged sections ("Returns:", "Since:",
// "Notes:", ...). Free-form blocks ("# = Heading", prose) document no symbol.
// Continuation lines may be indented any way: QEMU 7.2 wanted them aligned
// with the text after "@name:", later versions want four spaces; both are
// accepted here.

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

const SECTION_TAGS = new Set(["Returns:", "Since:", "Note:", "Notes:", "Example:", "Examples:", "TODO:"]);

export class QapiDoc {
  symbol: string | null = null;
  body = "";
  readonly args = new Map<string, DocArg>();
  readonly features = new Map<string, DocArg>();
  readonly sections: DocSection[] = [];
  private current: DocSection | DocArg | null = null;
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
      if (!this.symbol) throw this.fail("invalid name");
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
      this.startSymbolSection(part === "args" ? this.args : this.features, name.slice(1, -1));
      this.appendFreeform(line.slice(name.length).trim());
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
      this.startSection(name.slice(0, -1));
      line = line.slice(name.length).trim();
    }
    this.appendFreeform(line);
  }

  private startSymbolSection(map: Map<string, DocArg>, name: string): void {
    if (!name) throw this.fail("invalid parameter name");
    if (map.has(name)) throw this.fail(`'${name}' parameter name duplicated`);
    this.endSection();
    const arg: DocArg = { name, text: "", connected: false };
    map.set(name, arg);
    this.current = arg;
  }

  private startSection(name: string | null): void {
    if ((name === "Returns" || name === "Since") && this.sections.some((s) => s.name === name)) {
      throw this.fail(`duplicated '${name}' section`);
    }
    this.endSection();
    const section: DocSection = { name, text: "" };
    this.sections.push(section);
    this.current = section;
  }

  private endSection(): void {
    const cur = this.current;
    if (!cur) return;
    cur.text = cur.text.trim();
    if ("connected" in cur) {
      this.current = null;
      return;
    }
    if (cur.name !== null && cur.text === "") throw this.fail(`empty doc section '${cur.name}'`);
    this.current = null;
  }

  private appendFreeform(line: string): void {
    const m = /^(@\S+:)/.exec(line);
    if (m) throw this.fail(`'${m[1]}' not allowed in free-form documentation`);
    if (this.current) this.current.text += line.trimEnd() + "\n";
    else this.body += line.trimEnd() + "\n";
  }

  /** Every feature of a documented definition must be described. */
  connectFeature(name: string, info: SourceInfo | null): void {
    const arg = this.features.get(name);
    if (!arg) throw new QapiError(info, `feature '${name}' lacks documentation`);
    arg.connected = true;
  }

  connectMember(name: string): void {
    const arg = this.args.get(name);
    if (arg) arg.connected = true;
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
