// Out-of-band command handlers. They run on the monitor thread the moment a request is
// parsed and must never take the BQL: they may touch only lock-free shared state.

import type { Bql } from "../core/bql.js";
import { bqlInfo, oobTestPost } from "../core/handlers.js";
import { genericError } from "../qapi/error.js";

export interface OobContext {
  control: Int32Array;
  /** A read-only handle: OOB handlers look at the lock, they never take it. */
  bql: Bql;
}

type OobHandler = (args: unknown, ctx: OobContext) => unknown;

const OOB_HANDLERS: Record<string, OobHandler> = {
  "x-oob-test": (args, ctx) => {
    const { lock } = args as { lock: boolean };
    if (lock) {
      // Waiting here would stop the monitor thread itself, and with it the only way out.
      throw genericError("x-oob-test with lock=true blocks the thread that runs it; run it in-band");
    }
    oobTestPost(ctx.control);
    return {};
  },
  "x-query-bql": (_args, ctx) => bqlInfo(ctx.bql),
};

export function runOobCommand(name: string, args: unknown, ctx: OobContext): unknown {
  const handler = OOB_HANDLERS[name];
  if (handler === undefined) throw new Error(`no out-of-band handler for allow-oob command ${name}`);
  return handler(args, ctx);
}
