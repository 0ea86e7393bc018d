// One QMP connection: greeting, capabilities negotiation, the JSON stream in, replies and
// events out, and the flow control QEMU's monitor/qmp.c applies. In-band requests (and
// parse errors, which QEMU answers in order too) wait in this session's queue for the
// monitor-wide dispatcher; out-of-band requests run the moment they are parsed.

import type { CommandSpec } from "../qapi/generated/commands.js";
import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import { QmpError, genericError } from "../qapi/error.js";
import {
  checkRequest,
  errorReply,
  eventMessage,
  eventTimestamp,
  isOobRequest,
  requestId,
  successReply,
} from "./dispatch.js";
import { JsonStreamer, type JsonResult } from "./json-streamer.js";
import { toQmpJson } from "./json-writer.js";
import { inQdictOrder } from "../qapi/qdict-order.js";
import { VERSION_INFO } from "../version.js";

/** QEMU's QMP_REQ_QUEUE_LEN_MAX. */
export const QMP_REQ_QUEUE_LEN_MAX = 8;

/** A cap on one message (QEMU caps tokens at 64 MiB; one request never needs more than 1 MiB). */
export const QMP_MAX_MESSAGE_BYTES = 1 << 20;

export interface SessionTransport {
  write(text: string): void;
  /** Send what is buffered now rather than at the end of the event-loop turn. */
  flush?(): void;
  /** Stop delivering input (QEMU's monitor_suspend). */
  pause(): void;
  resume(): void;
}

export interface QueuedRequest {
  /** A parsed request, or the parse error QEMU answers in its place. */
  input: JsonResult;
}

/** What a session needs from the monitor thread around it. */
export interface SessionHost {
  /** Tell the dispatcher this session has queued in-band work. */
  wakeDispatcher(): void;
  /** Run an out-of-band command here and now (synchronously, without the BQL). */
  runOob(name: string, args: unknown): unknown;
  /** Broadcast an event raised by the monitor itself (COMMAND_DROPPED). */
  broadcast(event: string, data: Record<string, unknown>): void;
}

export interface SessionOptions {
  oobOffered: boolean;
  queueFull: "suspend" | "drop";
}

/** The only command a session can see before negotiation. */
function negotiationLookup(name: string): CommandSpec | undefined {
  return name === "qmp_capabilities" ? QMP_COMMANDS.get(name) : undefined;
}

function fullLookup(name: string): CommandSpec | undefined {
  return QMP_COMMANDS.get(name);
}

export class QmpSession {
  negotiated = false;
  oobEnabled = false;
  closed = false;
  /** In-band requests waiting for the dispatcher. */
  readonly queue: QueuedRequest[] = [];
  /** Requests handed to the dispatcher whose replies have not been sent yet. */
  inflight = 0;
  /** Replies go out in request order, even when a later one is ready first. */
  private replyChain: Promise<void> = Promise.resolve();
  /** Parsed input not yet looked at because the session is suspended. */
  private readonly inbox: JsonResult[] = [];
  /** Reading stops while the in-band queue is full, or while the client does not read. */
  private queueFull = false;
  private outputBlocked = false;
  private readonly streamer: JsonStreamer;
  /** Counters for tests and the dashboard. */
  readonly stats = { requests: 0, oob: 0, dropped: 0, parseErrors: 0 };

  constructor(
    private readonly transport: SessionTransport,
    private readonly host: SessionHost,
    private readonly options: SessionOptions,
  ) {
    this.streamer = new JsonStreamer((r) => this.onInput(r), { maxMessageBytes: QMP_MAX_MESSAGE_BYTES });
  }

  greet(): void {
    this.send({
      QMP: { version: VERSION_INFO, capabilities: this.options.oobOffered ? ["oob"] : [] },
    });
  }

  feed(chunk: Uint8Array): void {
    if (this.closed) return;
    this.streamer.feed(chunk);
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.inbox.length = 0;
  }

  get suspended(): boolean {
    return this.queueFull || this.outputBlocked;
  }

  private setFlow(queueFull: boolean, outputBlocked: boolean): void {
    const was = this.suspended;
    this.queueFull = queueFull;
    this.outputBlocked = outputBlocked;
    if (was && !this.suspended) {
      this.transport.resume();
      this.drainInbox();
    } else if (!was && this.suspended) {
      this.transport.pause();
    }
  }

  /** The client stopped reading its replies: stop reading its requests until it drains. */
  blockOutput(blocked: boolean): void {
    this.setFlow(this.queueFull, blocked);
  }

  /**
   * In-band requests QEMU would count as queued: all not yet answered, less the one the
   * dispatcher is executing (QEMU pops it from the queue before running it).
   */
  get queuedLength(): number {
    return this.queue.length + Math.max(0, this.inflight - 1);
  }

  /** QEMU's flow control: without OOB one request at a time, with OOB at most 8 queued. */
  private updateQueueFlow(): void {
    let full: boolean;
    if (!this.oobEnabled) full = this.queue.length + this.inflight > 0;
    else full = this.options.queueFull === "suspend" && this.queuedLength >= QMP_REQ_QUEUE_LEN_MAX;
    if (full !== this.queueFull) this.setFlow(full, this.outputBlocked);
  }

  private onInput(r: JsonResult): void {
    this.inbox.push(r);
    this.drainInbox();
  }

  private drainInbox(): void {
    while (!this.suspended && !this.closed && this.inbox.length > 0) {
      const r = this.inbox.shift() as JsonResult;
      this.handle(r);
    }
  }

  /** QEMU's handle_qmp_command(). */
  private handle(input: JsonResult): void {
    this.stats.requests++;
    if (input.kind === "error") this.stats.parseErrors++;
    if (input.kind === "value" && isOobRequest(input.value)) {
      this.stats.oob++;
      this.dispatchOob(input.value);
      return;
    }
    if (this.options.queueFull === "drop" && this.oobEnabled && this.queuedLength >= QMP_REQ_QUEUE_LEN_MAX) {
      // The 2018 seed: drop the request and tell every monitor.
      this.stats.dropped++;
      const id = input.kind === "value" ? requestId(input.value) : { present: false as const };
      this.host.broadcast("COMMAND_DROPPED", { id: id.present ? id.value : null, reason: "queue-full" });
      return;
    }
    this.queue.push({ input });
    this.updateQueueFlow();
    this.host.wakeDispatcher();
  }

  /** Called by the dispatcher when it takes this session's oldest request. */
  takeRequest(): QueuedRequest | undefined {
    const request = this.queue.shift();
    if (request !== undefined) this.inflight++;
    return request;
  }

  /**
   * Send a dispatched request's reply once every earlier one has gone out, then let the
   * queue breathe (QEMU's monitor_resume after the reply).
   */
  completeRequest(reply: Promise<Record<string, unknown> | null>): Promise<void> {
    this.replyChain = this.replyChain
      .then(() => reply)
      .then((r) => {
        if (r !== null && !this.closed) this.sendReply(r);
      })
      .finally(() => {
        this.inflight--;
        if (!this.closed) this.updateQueueFlow();
      });
    return this.replyChain;
  }

  /** The first half of in-band dispatch: check the request on the monitor thread. */
  checkInband(input: JsonResult):
    | { kind: "reply"; reply: Record<string, unknown> | null }
    | { kind: "core"; name: string; args: unknown; finish(res: { ok: true; value: unknown } | { ok: false; error: { class: string; desc: string } }): Record<string, unknown> | null } {
    if (input.kind === "error") return { kind: "reply", reply: errorReply({ class: "GenericError", desc: input.message }, { present: false }) };
    const req = input.value;
    const id = requestId(req);
    try {
      const checked = checkRequest(req, this.oobEnabled, this.negotiated ? fullLookup : negotiationLookup);
      if (checked.name === "qmp_capabilities") {
        return { kind: "reply", reply: successReply(this.qmpCapabilities(checked.args), id) };
      }
      return {
        kind: "core",
        name: checked.name,
        args: checked.args,
        finish: (res) => {
          if (!res.ok) return errorReply(res.error, id);
          return checked.spec.successResponse ? successReply(res.value, id) : null;
        },
      };
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
      return { kind: "reply", reply: errorReply(e.toWire(), id) };
    }
  }

  /** Out-of-band: check and run on this (the monitor) thread, reply at once. */
  private dispatchOob(req: unknown): void {
    const id = requestId(req);
    let reply: Record<string, unknown> | null;
    try {
      const checked = checkRequest(req, this.oobEnabled, this.negotiated ? fullLookup : negotiationLookup);
      const value = checked.name === "qmp_capabilities" ? this.qmpCapabilities(checked.args) : this.host.runOob(checked.name, checked.args);
      if (value instanceof Promise) {
        // A command that waits for another thread (migrate-recover waits for the receiver to
        // listen): its reply comes when it settles, overtaking nothing but its own wait.
        const spec = checked.spec;
        value.then(
          (v: unknown) => {
            if (!this.closed && spec.successResponse) this.sendReply(successReply(v, id));
          },
          (e: unknown) => {
            if (this.closed) return;
            if (e instanceof QmpError) this.sendReply(errorReply(e.toWire(), id));
            else this.sendReply(errorReply(genericError(e instanceof Error ? e.message : String(e)).toWire(), id));
          },
        );
        return;
      }
      reply = checked.spec.successResponse ? successReply(value, id) : null;
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
      reply = errorReply(e.toWire(), id);
    }
    if (reply !== null) {
      this.sendReply(reply);
      // An out-of-band reply is the one that must not wait: nothing batches with it.
      this.transport.flush?.();
    }
  }

  /** QEMU's qmp_qmp_capabilities(), which needs the session and so runs here. */
  private qmpCapabilities(args: unknown): Record<string, never> {
    if (this.negotiated) {
      throw new QmpError("CommandNotFound", "Capabilities negotiation is already complete, command ignored");
    }
    const enable = (args as { enable?: string[] }).enable ?? [];
    for (const cap of enable) {
      if (cap === "oob" && !this.options.oobOffered) throw genericError(`Capability ${cap} not available`);
    }
    this.oobEnabled = enable.includes("oob");
    this.negotiated = true;
    return {};
  }

  /** Send a reply; before negotiation a CommandNotFound gets QEMU's more useful text. */
  sendReply(reply: Record<string, unknown>): void {
    if (!this.negotiated) {
      const err = reply.error as { class?: string; desc?: string } | undefined;
      if (err !== undefined && err.class === "CommandNotFound") {
        err.desc = "Expecting capabilities negotiation with 'qmp_capabilities'";
      }
    }
    this.send(reply);
  }

  /** Events reach only negotiated sessions, as in QEMU. */
  sendEvent(event: string, data: Record<string, unknown> | undefined, timestamp = eventTimestamp()): void {
    if (!this.negotiated || this.closed) return;
    this.send(eventMessage(event, data, timestamp));
  }

  private send(msg: Record<string, unknown>): void {
    if (this.closed) return;
    this.transport.write(toQmpJson(inQdictOrder(msg)) + "\r\n");
  }
}
