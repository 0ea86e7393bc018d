// Context-free checks of schema expressions (QEMU's scripts/qapi/expr.py):
// the shape of each definition, its keys, names, 'if' conditions, features
// and flags. It also normalises the expressions the way QEMU does (members
// become {'type': T}, enum values and features become {'name': N}) so that
// model.ts sees a single form.

import type { ParsedExpr } from "./parser.js";
import { isDict, QapiError, SourceInfo } from "./source.js";
import type { QDict, QExpr } from "./source.js";

const VALID_NAME = /^(__[a-z0-9.-]+_)?(x-)?([a-z][a-z0-9_-]*)$/i;

export const METAS = ["enum", "struct", "union", "alternate", "command", "event"] as const;
export type Meta = (typeof METAS)[number];

/** Mangles a QAPI name the way QEMU's c_name(name, protect=False) does. */
export function cName(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, "_");
}

function checkNameIsStr(name: QExpr | undefined, info: SourceInfo, source: string): asserts name is string {
  if (typeof name !== "string") throw new QapiError(info, `${source} requires a string name`);
}

function checkNameStr(name: string, info: SourceInfo, source: string): string {
  // The whole 'q_' namespace is reserved for generated names (q_obj_*, q_empty).
  const m = VALID_NAME.exec(name);
  if (!m || cName(name).startsWith("q_")) throw new QapiError(info, `${source} has an invalid name`);
  return m[3]!;
}

function checkNameUpper(name: string, info: SourceInfo, source: string): void {
  const stem = checkNameStr(name, info, source);
  if (/[a-z-]/.test(stem)) throw new QapiError(info, `name of ${source} must not use lowercase or '-'`);
}

function checkNameLower(
  name: string,
  info: SourceInfo,
  source: string,
  permitUpper = false,
  permitUnderscore = false,
): void {
  const stem = checkNameStr(name, info, source);
  if ((!permitUpper && /[A-Z]/.test(stem)) || (!permitUnderscore && stem.includes("_"))) {
    throw new QapiError(info, `name of ${source} must not use uppercase or '_'`);
  }
}

function checkNameCamel(name: string, info: SourceInfo, source: string): void {
  const stem = checkNameStr(name, info, source);
  if (!/^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$/.test(stem)) {
    throw new QapiError(info, `name of ${source} must use CamelCase`);
  }
}

function checkDefnNameStr(name: string, info: SourceInfo, meta: Meta): void {
  if (meta === "event") {
    checkNameUpper(name, info, meta);
  } else if (meta === "command") {
    checkNameLower(name, info, meta, false, info.pragma.commandNameExceptions.includes(name));
  } else {
    checkNameCamel(name, info, meta);
    if (name.endsWith("List")) throw new QapiError(info, `${meta} name should not end in 'List'`);
  }
}

function quoteSorted(elems: Iterable<string>): string {
  return [...elems]
    .sort()
    .map((e) => `'${e}'`)
    .join(", ");
}

export function checkKeys(
  value: QDict,
  info: SourceInfo,
  source: string,
  required: string[],
  optional: string[],
): void {
  const missing = required.filter((k) => !value.has(k));
  if (missing.length > 0) {
    throw new QapiError(info, `${source} misses key${missing.length > 1 ? "s" : ""} ${quoteSorted(missing)}`);
  }
  const allowed = new Set([...required, ...optional]);
  const unknown = [...value.keys()].filter((k) => !allowed.has(k));
  if (unknown.length > 0) {
    throw new QapiError(
      info,
      `${source} has unknown key${unknown.length > 1 ? "s" : ""} ${quoteSorted(unknown)}\n` +
        `Valid keys are ${quoteSorted(allowed)}.`,
    );
  }
}

function checkFlags(expr: QDict, info: SourceInfo): void {
  for (const key of ["gen", "success-response"]) {
    if (expr.has(key) && expr.get(key) !== false) {
      throw new QapiError(info, `flag '${key}' may only use false value`);
    }
  }
  for (const key of ["boxed", "allow-oob", "allow-preconfig", "coroutine"]) {
    if (expr.has(key) && expr.get(key) !== true) {
      throw new QapiError(info, `flag '${key}' may only use true value`);
    }
  }
  if (expr.has("allow-oob") && expr.has("coroutine")) {
    // Not fundamentally incompatible, but QEMU has no use for it and forbids it.
    throw new QapiError(info, "flags 'allow-oob' and 'coroutine' are incompatible");
  }
}

export function checkIf(expr: QDict, info: SourceInfo, source: string): void {
  const checkInfix = (operator: string, operands: QExpr): void => {
    if (!Array.isArray(operands)) {
      throw new QapiError(info, `'${operator}' condition of ${source} must be an array`);
    }
    if (operands.length === 0) throw new QapiError(info, `'if' condition [] of ${source} is useless`);
    for (const op of operands) checkOne(op);
  };
  const checkOne = (cond: QExpr): void => {
    if (typeof cond === "string") {
      if (!/^[A-Z][A-Z0-9_]*$/.test(cond)) {
        throw new QapiError(info, `'if' condition '${cond}' of ${source} is not a valid identifier`);
      }
      return;
    }
    if (!isDict(cond)) throw new QapiError(info, `'if' condition of ${source} must be a string or an object`);
    checkKeys(cond, info, `'if' condition of ${source}`, [], ["all", "any", "not"]);
    if (cond.size !== 1) throw new QapiError(info, `'if' condition of ${source} has conflicting keys`);
    if (cond.has("not")) checkOne(cond.get("not")!);
    else if (cond.has("all")) checkInfix("all", cond.get("all")!);
    else checkInfix("any", cond.get("any")!);
  };
  const ifcond = expr.get("if");
  if (ifcond === undefined) return;
  checkOne(ifcond);
}

function normalizeMembers(members: QExpr | undefined): void {
  if (!isDict(members)) return;
  for (const [key, arg] of members) {
    if (!isDict(arg)) members.set(key, new Map([["type", arg]]));
  }
}

function checkType(
  value: QExpr | undefined,
  info: SourceInfo,
  source: string,
  allowArray = false,
  allowDict: string | boolean = false,
): void {
  if (value === undefined || typeof value === "string") return;
  if (Array.isArray(value)) {
    if (!allowArray) throw new QapiError(info, `${source} cannot be an array`);
    if (value.length !== 1 || typeof value[0] !== "string") {
      throw new QapiError(info, `${source}: array type must contain single type name`);
    }
    return;
  }
  // An anonymous type: a dictionary of members.
  if (!allowDict) throw new QapiError(info, `${source} should be a type name`);
  if (!isDict(value)) throw new QapiError(info, `${source} should be an object or type name`);
  const permissive = typeof allowDict === "string" && info.pragma.memberNameExceptions.includes(allowDict);
  for (const [rawKey, arg] of value) {
    const keySource = `${source} member '${rawKey}'`;
    const key = rawKey.startsWith("*") ? rawKey.slice(1) : rawKey;
    checkNameLower(key, info, keySource, permissive, permissive);
    const c = cName(key);
    if (c === "u" || c.startsWith("has_")) throw new QapiError(info, `${keySource} uses reserved name`);
    if (!isDict(arg)) throw new QapiError(info, `${keySource} should be an object or type name`);
    checkKeys(arg, info, keySource, ["type"], ["if", "features"]);
    checkIf(arg, info, keySource);
    checkFeatures(arg.get("features"), info);
    checkType(arg.get("type"), info, keySource, true);
  }
}

function toNamedDicts(list: QExpr[]): QDict[] {
  for (let i = 0; i < list.length; i++) {
    const v = list[i]!;
    if (!isDict(v)) list[i] = new Map([["name", v]]);
  }
  return list as QDict[];
}

function checkFeatures(features: QExpr | undefined, info: SourceInfo): void {
  if (features === undefined) return;
  if (!Array.isArray(features)) throw new QapiError(info, "'features' must be an array");
  for (const f of toNamedDicts(features)) {
    let source = "'features' member";
    checkKeys(f, info, source, ["name"], ["if"]);
    const name = f.get("name");
    checkNameIsStr(name, info, source);
    source = `${source} '${name}'`;
    checkNameLower(name, info, source);
    checkIf(f, info, source);
  }
}

function checkEnum(expr: QDict, info: SourceInfo): void {
  const name = expr.get("enum") as string;
  const members = expr.get("data");
  const prefix = expr.get("prefix");
  if (!Array.isArray(members)) throw new QapiError(info, "'data' must be an array");
  if (prefix !== undefined && typeof prefix !== "string") throw new QapiError(info, "'prefix' must be a string");
  const permissive = info.pragma.memberNameExceptions.includes(name);
  for (const member of toNamedDicts(members)) {
    let source = "'data' member";
    checkKeys(member, info, source, ["name"], ["if", "features"]);
    let memberName = member.get("name");
    checkNameIsStr(memberName, info, source);
    source = `${source} '${memberName}'`;
    // Enum values may start with a digit: hide it from the name rules.
    if (/^[0-9]/.test(memberName)) memberName = "d" + memberName;
    checkNameLower(memberName, info, source, permissive, permissive);
    checkIf(member, info, source);
    checkFeatures(member.get("features"), info);
  }
}

function checkStruct(expr: QDict, info: SourceInfo): void {
  const name = expr.get("struct") as string;
  const members = expr.get("data");
  if (typeof members === "string") throw new QapiError(info, "'data' should be an object");
  checkType(members, info, "'data'", false, name);
  checkType(expr.get("base"), info, "'base'");
}

/**
 * Union and alternate branches. ALTERNATE: QEMU 7.2 (expr.py check_alternate) lowers the
 * branch names' case rules and lets an alternate branch be an array, whose values arrive as
 * a JSON array (QTYPE_QLIST); union branches must name an object type.
 */
function checkBranches(members: QExpr | undefined, info: SourceInfo, alternate: boolean): QDict {
  if (!isDict(members)) throw new QapiError(info, "'data' must be an object");
  for (const [key, value] of members) {
    const source = `'data' member '${key}'`;
    if (alternate) checkNameLower(key, info, source);
    if (!isDict(value)) throw new QapiError(info, `${source} should be a type name`);
    checkKeys(value, info, source, ["type"], ["if"]);
    checkIf(value, info, source);
    checkType(value.get("type"), info, source, alternate);
  }
  return members;
}

function checkUnion(expr: QDict, info: SourceInfo): void {
  const name = expr.get("union") as string;
  checkType(expr.get("base"), info, "'base'", false, name);
  checkNameIsStr(expr.get("discriminator"), info, "'discriminator'");
  // Branch names are checked against the discriminator enum later.
  checkBranches(expr.get("data"), info, false);
}

function checkAlternate(expr: QDict, info: SourceInfo): void {
  const members = expr.get("data");
  const empty = isDict(members) ? members.size === 0 : Array.isArray(members) ? members.length === 0 : members === "" || members === false;
  if (empty) throw new QapiError(info, "'data' must not be empty");
  checkBranches(members, info, true);
}

function checkCommandOrEvent(expr: QDict, info: SourceInfo, isCommand: boolean): void {
  const args = expr.get("data");
  const boxed = expr.get("boxed") === true;
  if (boxed && args === undefined) throw new QapiError(info, "'boxed': true requires 'data'");
  checkType(args, info, "'data'", false, !boxed);
  if (isCommand) checkType(expr.get("returns"), info, "'returns'", true);
}

/** Checks and normalises every definition; throws the first QapiError found. */
export function checkExprs(exprs: readonly ParsedExpr[]): void {
  for (const { expr, info, doc } of exprs) {
    const metas = METAS.filter((m) => expr.has(m));
    if (metas.length !== 1) {
      throw new QapiError(
        info,
        "expression must have exactly one key 'enum', 'struct', 'union', 'alternate', 'command', 'event'",
      );
    }
    const meta = metas[0]!;
    const name = expr.get(meta);
    checkNameIsStr(name, info, `'${meta}'`);
    info.setDefn(meta, name);
    checkDefnNameStr(name, info, meta);

    if (doc) {
      if (doc.symbol !== name) throw new QapiError(info, `documentation comment is for '${doc.symbol}'`);
      doc.checkExpr(meta === "command");
    } else if (info.pragma.docRequired) {
      throw new QapiError(info, "documentation comment required");
    }

    switch (meta) {
      case "enum":
        checkKeys(expr, info, meta, ["enum", "data"], ["if", "features", "prefix"]);
        checkEnum(expr, info);
        break;
      case "union":
        checkKeys(expr, info, meta, ["union", "base", "discriminator", "data"], ["if", "features"]);
        normalizeMembers(expr.get("base"));
        normalizeMembers(expr.get("data"));
        checkUnion(expr, info);
        break;
      case "alternate":
        checkKeys(expr, info, meta, ["alternate", "data"], ["if", "features"]);
        normalizeMembers(expr.get("data"));
        checkAlternate(expr, info);
        break;
      case "struct":
        checkKeys(expr, info, meta, ["struct", "data"], ["base", "if", "features"]);
        normalizeMembers(expr.get("data"));
        checkStruct(expr, info);
        break;
      case "command":
        checkKeys(
          expr,
          info,
          meta,
          ["command"],
          ["data", "returns", "boxed", "if", "features", "gen", "success-response", "allow-oob", "allow-preconfig", "coroutine"],
        );
        normalizeMembers(expr.get("data"));
        checkCommandOrEvent(expr, info, true);
        break;
      case "event":
        checkKeys(expr, info, meta, ["event"], ["data", "boxed", "if", "features"]);
        normalizeMembers(expr.get("data"));
        checkCommandOrEvent(expr, info, false);
        break;
    }
    checkIf(expr, info, meta);
    checkFeatures(expr.get("features"), info);
    checkFlags(expr, info);
  }
}
