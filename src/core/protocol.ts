// The messages and comlink APIs between minivm's threads (DESIGN.md §2).

/** What the main thread hands the core thread at start. */
export interface CoreWorkerData {
  /** Every shared buffer (control words, BQL, RAM, bitmaps, serial rings): regions.ts. */
  regions: import("./regions.js").SharedRegions;
  monitorPort: import("node:worker_threads").MessagePort;
  startPaused: boolean;
  /** QEMU's -incoming: a URI to receive a migration from, "defer", or null. */
  incoming: string | null;
  noShutdown: boolean;
  /** QEMU's -no-reboot: a reset request becomes a shutdown request with the same cause. */
  noReboot?: boolean;
  /** QEMU's -gdb device (`tcp::1234`; `-s` gives that one), or absent for no GDB stub. */
  gdb?: string;
  name: string | undefined;
  /** The guest; absent when there is nothing to run (no kernel and no firmware yet). */
  machine: MachineConfig | null;
  /** `--drive` option strings, in order. */
  drives: string[];
  /** `-blockdev` nodes, already checked against the schema. */
  blockdevs: import("../qapi/generated/types.js").BlockdevOptions[];
  /** `-device virtio-blk-device,drive=...[,id=...]`. */
  devices: Array<{ drive: string; id: string | undefined }>;
  /** The QMP monitors' chardev ids (query-yank lists them). */
  chardevIds?: string[];
  /** `-object` definitions (TLS credentials, authz), checked by the schema and loaded once by the main thread. */
  objects?: import("../qapi/generated/types.js").ObjectOptions[];
}

export interface MachineConfig {
  ramSize: number;
  /** ELF bytes (QEMU's -kernel). */
  kernel: Uint8Array | null;
  /** Firmware bytes at 0x8000_0000; null is QEMU's `-bios none`. */
  bios: Uint8Array | null;
  append: string | undefined;
  /** QEMU's -initrd: raw bytes placed after the kernel, named in /chosen. */
  initrd?: Uint8Array | null;
  /** The C extension; QEMU's `-cpu rv32,c=false` turns it off (default on). */
  rvc?: boolean;
}

export type ExecResult =
  | { ok: true; value: unknown }
  | { ok: false; error: { class: string; desc: string } };

/** Served by the core thread to the monitor thread. */
export interface CoreApi {
  /** Run one in-band command (already validated) with the BQL held. */
  execute(name: string, args: Record<string, unknown>): Promise<ExecResult>;
}

/** Raw messages the core posts on the monitor port next to comlink's replies. */
export type CoreToMonitorMessage =
  | { kind: "event"; event: string; data: Record<string, unknown> | undefined; timestamp: { seconds: number; microseconds: number } }
  | { kind: "exit"; status: number }
  /**
   * A migration thread's end of its link to the monitor thread (transferred): out-of-band
   * migrate-pause / migrate-recover / yank reach the thread over it, and the destination's
   * MIGRATION events come back over it while the core may be stuck on a postcopy fault.
   */
  | { kind: "migration-link"; side: "outgoing" | "incoming"; port: import("node:worker_threads").MessagePort }
  /** An in-band yank of a monitor's chardev: the monitor thread owns its sockets. */
  | { kind: "yank-chardev"; id: string }
  | { kind: "authz"; definitions: import("../crypto/authz.js").AuthzDefinition[] };

/** Messages the core thread posts to the main thread. */
export type CoreToMainMessage =
  | { kind: "ready" }
  | { kind: "exit"; status: number }
  | { kind: "fatal"; message: string }
  /** Something the user should read on stderr, the VM going on (QEMU's error_report). */
  | { kind: "warning"; message: string };

// Serial bytes travel in the shared regions' serial rings, not in messages: the main thread
// posts nothing to the core thread.

/** One QMP monitor as configured on the command line. */
export interface MonitorConfig {
  /** e.g. { kind: "unix", path } or { kind: "tcp", host, port } */
  address: SocketAddress;
  /** QEMU's `wait=on`: block start-up until a client connects (server mode only). */
  wait: boolean;
  /** What to do with the 9th queued in-band request: suspend reading, or drop it (2018). */
  queueFull: "suspend" | "drop";
  /** Listen (server=on, the usual) or connect out to a listening client (server=off). */
  server: boolean;
  /** Offer the "oob" capability (QEMU offers it on sockets). */
  oob: boolean;
  /** The chardev id: `-chardev id=`, or QEMU's compat_monitorN for the Nth --qmp. */
  chardevId?: string;
  /** `-chardev ...,tls-creds=ID[,tls-authz=ID]`: TLS on every accepted connection (src/crypto). */
  tls?: ChardevTls;
}

/** A chardev's TLS: its name (for messages), the loaded server credentials, the authz object's id. */
export interface ChardevTls {
  chardev: string;
  creds: import("../crypto/tls-creds.js").TlsCredsMaterial;
  authz: string | null;
}

export type SocketAddress = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

/** What the main thread hands the monitor thread at start. */
export interface MonitorWorkerData {
  /** The same regions object the core thread gets; the monitor uses the control words and BQL. */
  regions: import("./regions.js").SharedRegions;
  corePort: import("node:worker_threads").MessagePort;
  monitors: MonitorConfig[];
  /** The authz objects at start; the core thread sends changes (object-add/del) as "authz" messages. */
  authz?: import("../crypto/authz.js").AuthzDefinition[];
}

export type MonitorToMainMessage =
  | { kind: "listening"; addresses: string[] }
  | { kind: "error"; message: string }
  | { kind: "connected" }
  | { kind: "closed" };

export type MainToMonitorMessage = { kind: "close" };
