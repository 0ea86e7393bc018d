// Where a piece of schema text came from, and the error type every stage of
// the QAPI toolchain reports with. Modelled on QEMU's scripts/qapi/source.py
// and error.py: messages read "FILE: In struct 'Foo':" then "FILE:LINE: msg".

/** The pragmas in force; one object is shared by every file of a schema. */
export interface Pragma {
  docRequired: boolean;
  commandNameExceptions: string[];
  commandReturnsExceptions: string[];
  memberNameExceptions: string[];
}

export function newPragma(): Pragma {
  return {
    docRequired: false,
    commandNameExceptions: [],
    commandReturnsExceptions: [],
    memberNameExceptions: [],
  };
}

export class SourceInfo {
  defnMeta: string | null = null;
  defnName: string | null = null;

  constructor(
    readonly fname: string,
    readonly line: number,
    readonly parent: SourceInfo | null,
    readonly pragma: Pragma,
  ) {}

  nextLine(): SourceInfo {
    return new SourceInfo(this.fname, this.line + 1, this.parent, this.pragma);
  }

  setDefn(meta: string, name: string): void {
    this.defnMeta = meta;
    this.defnName = name;
  }

  loc(): string {
    return `${this.fname}:${this.line}`;
  }

  /** "In file included from" lines, outermost include first. */
  includePath(): string {
    let ret = "";
    for (let p = this.parent; p; p = p.parent) ret = `In file included from ${p.loc()}:\n` + ret;
    return ret;
  }

  inDefn(): string {
    return this.defnName ? `${this.fname}: In ${this.defnMeta} '${this.defnName}':\n` : "";
  }

  toString(): string {
    return this.includePath() + this.inDefn() + this.loc();
  }
}

/** A schema error; `message` is the full multi-line text QEMU would print. */
export class QapiError extends Error {
  constructor(
    readonly info: SourceInfo | null,
    readonly msg: string,
    readonly col: number | null = null,
  ) {
    super(QapiError.format(info, msg, col));
    this.name = "QapiError";
  }

  static format(info: SourceInfo | null, msg: string, col: number | null): string {
    if (!info) return msg;
    let loc = info.toString();
    if (col !== null) loc += `:${col}`;
    return `${loc}: ${msg}`;
  }
}

/** A value of the schema language: strings, booleans, arrays and ordered objects. */
export type QExpr = string | boolean | QExpr[] | QDict;
export type QDict = Map<string, QExpr>;

export function isDict(v: QExpr | undefined): v is QDict {
  return v instanceof Map;
}
