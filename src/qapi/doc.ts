// Documentation comments: a '##' ... '##' block. "# @Name:" on the first line
// makes it the documentation of the definition that follows; "# @member:"
// lines describe members, a "Features:" line starts feature descriptions, and
// "Since:", "Returns:" and friends are tagged sections (qapi-code-gen.rst,
// "Documentation comments"). Free-form blocks ("# = Heading") are plain text.

import { QapiError, SourceInfo } from "./source.js";

export interface DocSection {
  readonly name: string | null;
  text: string;
}

export interface DocArg {
  readonly name: string;
  text: string;
  /** Set once the checker finds the member/feature this describes. */
  connected: boolean;
}

const TAGGED_SECTION = /^(Returns|Since|Notes?|Examples?|TODO|Errors):/;

export class QapiDoc {
  symbol: string | null = null;
  body = "";
  readonly args = new Map<string, DocArg>();
  readonly features = new Map<string, DocArg>();
  readonly sections: DocSection[] = [];
  private current: DocSection | DocArg | null = null;
  private inFeatures = false;
  private lines = 0;

  constructor(readonly info: SourceInfo) {}

  /**
   * Add one comment line ("#" or "# text"); `fail` makes an error located at
   * the line, as QEMU reports doc syntax errors with the line and column.
   */
  append(raw: string, fail: (msg: string) => QapiError): void {
    let line = raw.slice(1);
    if (line !== "") {
      if (line[0] !== " ") throw fail("missing space after #");
      line = line.slice(1);
    }
    const first = this.lines === 0;
    this.lines++;
    if (first && line.startsWith("@")) {
      if (!line.endsWith(":")) throw fail("line should end with ':'");
      this.symbol = line.slice(1, -1);
      if (!this.symbol) throw fail("name required after '@'");
      return;
    }
    if (this.symbol === null) {
      this.body += line + "\n";
      return;
    }
    const arg = /^@([^:\s]+):(.*)$/.exec(line);
    if (arg) {
      const name = arg[1]!;
      const map = this.inFeatures ? this.features : this.args;
      if (map.has(name)) throw fail(`'${name}' parameter name duplicated`);
      const entry: DocArg = { name, text: arg[2]!.trim(), connected: false };
      map.set(name, entry);
      this.current = entry;
      return;
    }
    if (line === "Features:") {
      this.inFeatures = true;
      this.current = null;
      return;
    }
    const tag = TAGGED_SECTION.exec(line);
    if (tag) {
      const section: DocSection = { name: tag[1]!, text: line.slice(tag[0].length).trim() };
      this.sections.push(section);
      this.current = section;
      return;
    }
    if (this.current) {
      this.current.text += (this.current.text ? "\n" : "") + line.trim();
    } else {
      this.body += line + "\n";
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
