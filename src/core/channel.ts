// comlink over Node's MessagePort. comlink ships ESM and UMD builds without an "exports"
// map, so Node loads the UMD (CommonJS) one; this module is the single place that knows.

import type { MessagePort } from "node:worker_threads";
import * as comlink from "comlink";
import nodeAdapterModule from "comlink/dist/umd/node-adapter.js";

// The UMD build sets module.exports to the function itself; its typings describe an ES
// default export. Accept either shape.
type NodeAdapter = typeof nodeAdapterModule.default;
const nodeAdapter: NodeAdapter =
  typeof nodeAdapterModule === "function" ? (nodeAdapterModule as unknown as NodeAdapter) : nodeAdapterModule.default;

export type Remote<T> = comlink.Remote<T>;

/** Serve `api` to the thread at the other end of `port`. */
export function exposeOn(api: object, port: MessagePort): void {
  comlink.expose(api, nodeAdapter(port));
}

/** A typed proxy for the API served at the other end of `port`. */
export function wrapPort<T>(port: MessagePort): Remote<T> {
  return comlink.wrap<T>(nodeAdapter(port));
}
