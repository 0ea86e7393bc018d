// Checking a QMP request and shaping its reply, as QEMU's qapi/qmp-dispatch.c does:
// the request's members are checked in the order QEMU's QDict iterates them, then the
// command is looked up, its OOB permission checked, and finally its arguments visited.

import type { CommandSpec } from "../qapi/generated/commands.js";
import { QmpError, genericError } from "../qapi/error.js";
import { qdictKeyOrder } from "../qapi/qdict-order.js";

/**
 * Commands the QMP session answers itself, because they change the session rather than the
 * machine (QEMU's qmp_capabilities, monitor/qmp-cmds-control.c). Every other command has its
 * handler in the one command table the core thread builds (src/core/handlers.ts).
 */
export const SESSION_COMMANDS = ["qmp_capabilities"] as const;
export type SessionCommandName = (typeof SESSION_COMMANDS)[number];

export interface CheckedRequest {
  name: string;
  spec: CommandSpec;
  /** The arguments after the generated visitor checked them. */
  args: unknown;
  oob: boolean;
}

export type RequestId = { present: false } | { present: true; value: unknown };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The `id` a reply must echo: only requests that are JSON objects have one. */
export function requestId(req: unknown): RequestId {
  if (isObject(req) && Object.prototype.hasOwnProperty.call(req, "id")) return { present: true, value: req.id };
  return { present: false };
}

/**
 * QEMU's qmp_is_oob(): a request runs out of band when it says `exec-oob` and not `execute`.
 * minivm also honours the 2018 seed's spelling, `"control": {"run-oob": true}`.
 */
export function isOobRequest(req: unknown): boolean {
  if (!isObject(req)) return false;
  if ("exec-oob" in req && !("execute" in req)) return true;
  const control = req.control;
  return "execute" in req && isObject(control) && control["run-oob"] === true;
}

/** QEMU's qmp_dispatch_check_obj(), plus the 2018 `control` member. */
function checkObject(req: Record<string, unknown>, allowOob: boolean): void {
  let execKey: string | null = null;
  for (const key of qdictKeyOrder(Object.keys(req))) {
    const value = req[key];
    if (key === "execute" || (key === "exec-oob" && allowOob)) {
      if (typeof value !== "string") throw genericError(`QMP input member '${key}' must be a string`);
      if (execKey !== null) throw genericError(`QMP input member '${key}' clashes with '${execKey}'`);
      execKey = key;
    } else if (key === "arguments") {
      if (!isObject(value)) throw genericError("QMP input member 'arguments' must be an object");
    } else if (key === "id") {
      continue;
    } else if (key === "control") {
      // The 2018 seed's request flags. QEMU >= 3.0 refuses the member; minivm keeps it.
      if (!isObject(value)) throw genericError("QMP input member 'control' must be an object");
      if (value["run-oob"] === true && !allowOob) {
        throw genericError("Please enable Out-Of-Band first for the session during capabilities negotiation");
      }
    } else {
      throw genericError(`QMP input member '${key}' is unexpected`);
    }
  }
  if (execKey === null) throw genericError("QMP input lacks member 'execute'");
}

/**
 * Check a request against the commands this session may run; throws QmpError with QEMU's
 * class and words. `lookup` returns undefined for commands the session cannot see (before
 * negotiation everything but qmp_capabilities).
 */
export function checkRequest(
  req: unknown,
  allowOob: boolean,
  lookup: (name: string) => CommandSpec | undefined,
): CheckedRequest {
  if (!isObject(req)) throw genericError("QMP input must be a JSON object");
  checkObject(req, allowOob);
  const oob = isOobRequest(req);
  const name = (typeof req["exec-oob"] === "string" && !("execute" in req) ? req["exec-oob"] : req.execute) as string;
  const spec = lookup(name);
  if (spec === undefined) throw new QmpError("CommandNotFound", `The command ${name} has not been found`);
  if (oob && !spec.allowOob) throw genericError(`The command ${name} does not support OOB`);
  const rawArgs = isObject(req.arguments) ? req.arguments : {};
  const args = spec.parseArgs(rawArgs);
  return { name, spec, args, oob };
}

export function successReply(value: unknown, id: RequestId): Record<string, unknown> {
  const reply: Record<string, unknown> = { return: value === undefined ? {} : value };
  if (id.present) reply.id = id.value;
  return reply;
}

export function errorReply(error: { class: string; desc: string }, id: RequestId): Record<string, unknown> {
  const reply: Record<string, unknown> = { error: { class: error.class, desc: error.desc } };
  if (id.present) reply.id = id.value;
  return reply;
}

export function eventMessage(
  event: string,
  data: Record<string, unknown> | undefined,
  timestamp: { seconds: number; microseconds: number },
): Record<string, unknown> {
  const msg: Record<string, unknown> = { event, timestamp };
  if (data !== undefined && Object.keys(data).length > 0) msg.data = data;
  return msg;
}

export function eventTimestamp(): { seconds: number; microseconds: number } {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { seconds: Math.floor(us / 1e6), microseconds: us % 1e6 };
}
