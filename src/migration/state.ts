// The migration state of one VM, on the core thread: QEMU's MigrationState (the outgoing side)
// and MigrationIncomingState (the incoming side) in one object, with QEMU 7.2's status
// transitions, capability and parameter rules and query-migrate shapes (migration/migration.c:
// migrate_set_state, migrate_caps_check, migrate_params_check, fill_source_migration_info,
// fill_destination_migration_info, populate_time_info, populate_ram_info). The engine fills
// the counters and drives the status; the QMP handlers only read and check.

import { storeMigrationStatus } from "./status-word.js";
import type { FaultLatency } from "./protocol.js";
import { genericError } from "../qapi/error.js";
import {
  MigrationCapability_VALUES,
  type MigrationCapability,
  type MigrationCapabilityStatus,
  type MigrationInfo,
  type MigrationParameters,
  type MigrationStatus,
  type MigrateSetParameters,
  type SocketAddress,
} from "../qapi/generated/types.js";

/** QEMU's TARGET_PAGE_SIZE on riscv32. */
export const MIGRATION_PAGE_SIZE = 4096;

/** QEMU's MAX_MIGRATE_DOWNTIME (migration/migration.c), in milliseconds. */
export const MAX_MIGRATE_DOWNTIME_MS = 2000 * 1000;

/** QEMU's QERR_MIGRATION_ACTIVE. */
export const MIGRATION_ACTIVE_ERROR = "There's a migration process in progress";

/** What `MIGRATION` and `MIGRATION_PASS` are sent through (the generated event emitters). */
export interface MigrationEvents {
  MIGRATION(data: { status: MigrationStatus }): void;
  MIGRATION_PASS(data: { pass: number }): void;
}

/**
 * The RAM counters the engine keeps up to date, as plain numbers (bytes, pages, ms). They are
 * QEMU's ram_counters and MigrationState's mbps/pages_per_second; query-migrate reads them.
 */
export interface MigrationCounters {
  transferred: number;
  /** Bytes of RAM still dirty (QEMU's ram_bytes_remaining()). */
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  dirtyPagesRate: number;
  mbps: number;
  dirtySyncCount: number;
  postcopyRequests: number;
  pagesPerSecond: number;
  precopyBytes: number;
  downtimeBytes: number;
  postcopyBytes: number;
}

function zeroCounters(): MigrationCounters {
  return {
    transferred: 0, remaining: 0, total: 0, duplicate: 0, normal: 0, dirtyPagesRate: 0, mbps: 0, dirtySyncCount: 0,
    postcopyRequests: 0, pagesPerSecond: 0, precopyBytes: 0, downtimeBytes: 0, postcopyBytes: 0,
  };
}

/** Every parameter, always present: QEMU keeps them all set (migration/migration.c's defaults). */
export type MigrationParameterValues = Required<MigrationParameters>;

/** QEMU 7.2's defaults (migration_instance_init and the DEFINE_PROP_* of migration_properties). */
export function defaultParameters(): MigrationParameterValues {
  return {
    "announce-initial": 50,
    "announce-max": 550,
    "announce-rounds": 5,
    "announce-step": 100,
    "compress-level": 1,
    "compress-threads": 8,
    "compress-wait-thread": true,
    "decompress-threads": 2,
    "throttle-trigger-threshold": 50,
    "cpu-throttle-initial": 20,
    "cpu-throttle-increment": 10,
    "cpu-throttle-tailslow": false,
    "tls-creds": "",
    "tls-hostname": "",
    "tls-authz": "",
    "max-bandwidth": 128 * 1024 * 1024,
    "downtime-limit": 300,
    "x-checkpoint-delay": 20000,
    "block-incremental": false,
    "multifd-channels": 2,
    "xbzrle-cache-size": 64 * 1024 * 1024,
    "max-postcopy-bandwidth": 0,
    "max-cpu-throttle": 99,
    "multifd-compression": "none",
    "multifd-zlib-level": 1,
    "multifd-zstd-level": 1,
  };
}

/**
 * Capabilities that minivm stores and reports but whose stream it cannot produce: a migration
 * started with one of them on is refused rather than silently sent without it.
 */
export const UNIMPLEMENTED_CAPABILITIES: readonly MigrationCapability[] = [
  "xbzrle", "compress", "x-colo", "block", "multifd", "dirty-bitmaps", "x-ignore-shared",
  "background-snapshot", "zero-copy-send", "postcopy-preempt",
];

/** QEMU's migration_is_running(): every status from setup until an end state. */
export function isRunningStatus(s: MigrationStatus): boolean {
  return !(s === "none" || s === "completed" || s === "failed" || s === "cancelled" || s === "colo");
}

/**
 * The statuses each status may move to. QEMU sets them with compare-and-swap from a known
 * state (migrate_set_state) rather than a table; this table is those call sites gathered, so
 * a wrong move by the engine is caught as a bug.
 */
const STATUS_TRANSITIONS: Readonly<Record<MigrationStatus, readonly MigrationStatus[]>> = {
  none: ["setup", "failed"],
  setup: ["active", "failed", "cancelling", "postcopy-active"],
  active: ["pre-switchover", "device", "completed", "failed", "cancelling", "postcopy-active"],
  "pre-switchover": ["device", "failed", "cancelling"],
  device: ["completed", "failed", "cancelling"],
  cancelling: ["cancelled", "failed"],
  "postcopy-active": ["completed", "failed", "postcopy-paused", "cancelling"],
  "postcopy-paused": ["postcopy-recover", "failed", "cancelling"],
  "postcopy-recover": ["postcopy-active", "postcopy-paused", "failed", "cancelling"],
  // A new migration starts again from setup once the last one ended.
  completed: ["setup"],
  failed: ["setup"],
  cancelled: ["setup"],
  colo: ["completed", "failed"],
  "wait-unplug": ["active", "failed", "cancelling"],
};

/** The incoming side: QEMU's MigrationIncomingState and the `-incoming` bookkeeping. */
export interface IncomingState {
  /** The `--incoming` argument: a URI, "defer", or null when the VM is no destination. */
  requested: string | null;
  /** QEMU's `once` in qmp_migrate_incoming: an incoming migration was started. */
  started: boolean;
  /**
   * QEMU's `autostart`: start the guest when the incoming migration completes. Cleared by -S
   * and by `stop` in inmigrate, set again by `cont` in inmigrate.
   */
  autostart: boolean;
  status: MigrationStatus;
  /** Where the incoming migration listens (QEMU's mis->socket_address_list), once it does. */
  socketAddress: SocketAddress[] | null;
  /** Postcopy's faults on this destination: request-to-arrival latency (us), requests, pages placed. */
  faults: (FaultLatency & { requests: number; pages: number }) | null;
}

export interface MigrationStateOptions {
  events: MigrationEvents;
  /** Milliseconds on a monotonic clock (QEMU uses QEMU_CLOCK_REALTIME). */
  now?: () => number;
  incoming?: string | null;
  autostart?: boolean;
  /** The shared control words: both statuses are mirrored there for out-of-band commands. */
  control?: Int32Array;
}

export class MigrationState {
  /** The outgoing migration's status (QEMU's MigrationState.state). */
  private statusValue: MigrationStatus = "none";
  readonly capabilities: Record<MigrationCapability, boolean>;
  parameters: MigrationParameterValues = defaultParameters();
  /** The counters of the current or last outgoing migration; the engine writes them. */
  ram: MigrationCounters = zeroCounters();
  readonly incoming: IncomingState;
  /** When the outgoing migration started (ms, `now()`). */
  startTime = 0;
  /** Milliseconds spent in setup; set by the engine when the first pass begins. */
  setupTime = 0;
  /** Set by the engine at completion. */
  totalTime = 0;
  downtime = 0;
  /** The engine's current estimate, in ms. */
  expectedDowntime = 0;
  /** auto-converge's current throttle in percent; 0 = not throttling. */
  cpuThrottlePercentage = 0;
  /** Why the outgoing migration failed (QEMU's s->error), shown as error-desc. */
  error: string | null = null;
  /** The URI of the current or last outgoing migration. */
  uri: string | null = null;
  /** migrate-start-postcopy was accepted (part 2 acts on it). */
  startPostcopy = false;

  private readonly events: MigrationEvents;
  readonly now: () => number;

  constructor(o: MigrationStateOptions) {
    this.events = o.events;
    this.now = o.now ?? (() => performance.now());
    this.capabilities = Object.fromEntries(MigrationCapability_VALUES.map((c) => [c, false])) as Record<MigrationCapability, boolean>;
    this.incoming = { requested: o.incoming ?? null, started: false, autostart: o.autostart ?? true, status: "none", socketAddress: null, faults: null };
    this.control = o.control ?? null;
  }

  private readonly control: Int32Array | null;

  /**
   * The incoming status as the receiver thread moved it (it already stored the status word
   * and, with `emit` false, sent the event itself).
   */
  setIncomingStatus(status: MigrationStatus, opts: { emit: boolean }): void {
    this.incoming.status = status;
    if (this.control !== null) storeMigrationStatus(this.control, "incoming", status);
    if (opts.emit) this.emitStatus(status);
  }

  get status(): MigrationStatus {
    return this.statusValue;
  }

  /** QEMU's migration_is_running() for the outgoing side. */
  get running(): boolean {
    return isRunningStatus(this.statusValue);
  }

  /**
   * QEMU's migrate_set_state(): move from `from` to `to` only if the status is still `from`,
   * and send MIGRATION when the events capability is on (migrate_generate_event). Returns
   * false, changing nothing, when the status has moved on (a cancel raced the engine, say).
   */
  transition(from: MigrationStatus, to: MigrationStatus): boolean {
    if (this.statusValue !== from) return false;
    if (!STATUS_TRANSITIONS[from].includes(to)) throw new Error(`invalid migration status transition: '${from}' -> '${to}'`);
    this.statusValue = to;
    if (this.control !== null) storeMigrationStatus(this.control, "outgoing", to);
    this.emitStatus(to);
    return true;
  }

  /** The incoming side's migrate_set_state(), on mis->state. */
  transitionIncoming(from: MigrationStatus, to: MigrationStatus): boolean {
    if (this.incoming.status !== from) return false;
    if (!STATUS_TRANSITIONS[from].includes(to)) throw new Error(`invalid incoming migration status transition: '${from}' -> '${to}'`);
    this.incoming.status = to;
    if (this.control !== null) storeMigrationStatus(this.control, "incoming", to);
    this.emitStatus(to);
    return true;
  }

  private emitStatus(status: MigrationStatus): void {
    if (this.capabilities.events) this.events.MIGRATION({ status });
  }

  /**
   * QEMU 7.2's qemu_start_incoming_migration() sends MIGRATION {setup} whatever the events
   * capability says, before it even parses the URI.
   */
  announceIncomingSetup(): void {
    this.events.MIGRATION({ status: "setup" });
  }

  /** A dirty bitmap sync began pass `dirtySyncCount` (QEMU's migration_bitmap_sync). */
  passStarted(): void {
    this.ram.dirtySyncCount += 1;
    if (this.capabilities.events) this.events.MIGRATION_PASS({ pass: this.ram.dirtySyncCount });
  }

  /**
   * Begin a new outgoing migration: QEMU's migrate_init() clears the last one's counters and
   * error and enters setup. The caller checked that none is running.
   */
  beginOutgoing(uri: string): void {
    this.ram = zeroCounters();
    this.error = null;
    this.uri = uri;
    this.setupTime = 0;
    this.totalTime = 0;
    this.downtime = 0;
    this.expectedDowntime = 0;
    this.cpuThrottlePercentage = 0;
    this.startPostcopy = false;
    this.startTime = this.now();
    this.transition(this.statusValue, "setup");
  }

  /** QEMU's migrate_fd_error()/migrate_set_error(): record why, and fail from `from`. */
  fail(message: string, from: MigrationStatus = this.statusValue): void {
    if (this.error === null) this.error = message;
    this.transition(from, "failed");
  }

  /** QEMU's fill_destination_migration_info() then fill_source_migration_info(). */
  queryMigrate(): MigrationInfo {
    const info: MigrationInfo = {};
    if (this.incoming.socketAddress !== null) info["socket-address"] = structuredClone(this.incoming.socketAddress);
    const inc = this.incoming.status;
    if (inc !== "none") info.status = inc;
    const f = this.incoming.faults;
    if (f !== null) info["x-postcopy-faults"] = { faults: f.faults, "p50-us": f.p50, "p99-us": f.p99, "max-us": f.max, requests: f.requests, pages: f.pages };
    const s = this.statusValue;
    switch (s) {
      case "none":
        // Nothing ever migrated out: keep the destination's view.
        return info;
      case "setup":
        info.status = s;
        break;
      case "active":
      case "cancelling":
      case "postcopy-active":
      case "pre-switchover":
      case "device":
      case "postcopy-paused":
      case "postcopy-recover":
        this.fillTime(info, s);
        this.fillRam(info, s);
        break;
      case "completed":
        this.fillTime(info, s);
        this.fillRam(info, s);
        break;
      case "failed":
        info.status = s;
        if (this.error !== null) info["error-desc"] = this.error;
        break;
      case "cancelled":
      case "colo":
      case "wait-unplug":
        info.status = s;
        break;
    }
    return info;
  }

  /** QEMU's populate_time_info(). */
  private fillTime(info: MigrationInfo, s: MigrationStatus): void {
    info.status = s;
    info["setup-time"] = Math.round(this.setupTime);
    if (s === "completed") {
      info["total-time"] = Math.round(this.totalTime);
      info.downtime = Math.round(this.downtime);
    } else {
      info["total-time"] = Math.round(this.now() - this.startTime);
      info["expected-downtime"] = Math.round(this.expectedDowntime);
    }
  }

  /** QEMU's populate_ram_info(): remaining and the dirty rate only while not completed. */
  private fillRam(info: MigrationInfo, s: MigrationStatus): void {
    const r = this.ram;
    info.ram = {
      transferred: r.transferred,
      remaining: s === "completed" ? 0 : r.remaining,
      total: r.total,
      duplicate: r.duplicate,
      skipped: 0,
      normal: r.normal,
      "normal-bytes": r.normal * MIGRATION_PAGE_SIZE,
      "dirty-pages-rate": s === "completed" ? 0 : r.dirtyPagesRate,
      mbps: r.mbps,
      "dirty-sync-count": r.dirtySyncCount,
      "postcopy-requests": r.postcopyRequests,
      "page-size": MIGRATION_PAGE_SIZE,
      "multifd-bytes": 0,
      "pages-per-second": r.pagesPerSecond,
      "precopy-bytes": r.precopyBytes,
      "downtime-bytes": r.downtimeBytes,
      "postcopy-bytes": r.postcopyBytes,
      "dirty-sync-missed-zero-copy": 0,
    };
    if (this.cpuThrottlePercentage > 0) info["cpu-throttle-percentage"] = this.cpuThrottlePercentage;
  }

  /** query-migrate-capabilities: every capability, in the enum's order. */
  queryCapabilities(): MigrationCapabilityStatus[] {
    return MigrationCapability_VALUES.map((capability) => ({ capability, state: this.capabilities[capability] }));
  }

  /**
   * QEMU 7.2's qmp_migrate_set_capabilities(): refused while a migration runs; otherwise the
   * whole new set is checked (migrate_caps_check) before any of it is applied.
   */
  setCapabilities(list: readonly MigrationCapabilityStatus[]): void {
    if (this.running) throw genericError(MIGRATION_ACTIVE_ERROR);
    const next = { ...this.capabilities };
    for (const c of list) next[c.capability] = c.state;
    checkCapabilities(next);
    Object.assign(this.capabilities, next);
  }

  /** query-migrate-parameters. */
  queryParameters(): MigrationParameters {
    return { ...this.parameters };
  }

  /**
   * QEMU 7.2's qmp_migrate_set_parameters(): the new values merged over the current ones
   * (migrate_params_test_apply), checked whole (migrate_params_check), then applied.
   */
  setParameters(p: MigrateSetParameters): void {
    const next: MigrationParameterValues = { ...this.parameters };
    for (const [key, value] of Object.entries(p) as [keyof MigrateSetParameters, unknown][]) {
      if (value === undefined) continue;
      // A null TLS string means "" (QEMU turns QTYPE_QNULL into an empty string).
      if (key === "tls-creds" || key === "tls-hostname" || key === "tls-authz") next[key] = value === null ? "" : (value as string);
      // QEMU 7.2 neither tests nor applies the multifd compression levels (a bug it has):
      // they are accepted and keep their old value.
      else if (key === "multifd-zlib-level" || key === "multifd-zstd-level") continue;
      else (next as Record<string, unknown>)[key] = value;
    }
    checkParameters(next, this.capabilities);
    this.parameters = next;
  }
}

function big(v: number | bigint): bigint {
  return typeof v === "bigint" ? v : BigInt(v);
}

function invalid(name: string, expects: string): never {
  throw genericError(`Parameter '${name}' expects ${expects}`);
}

/** QEMU 7.2's migrate_caps_check(), for a build with replication and live block migration. */
export function checkCapabilities(caps: Readonly<Record<MigrationCapability, boolean>>): void {
  if (caps["postcopy-ram"] && caps["x-ignore-shared"]) throw genericError("Postcopy is not compatible with ignore-shared");
  if (caps["background-snapshot"]) {
    // QEMU first asks the host kernel for userfaultfd write protection, which it has here.
    const incompatible: MigrationCapability[] = [
      "postcopy-ram", "dirty-bitmaps", "postcopy-blocktime", "late-block-activate", "return-path", "multifd",
      "pause-before-switchover", "auto-converge", "release-ram", "rdma-pin-all", "compress", "xbzrle", "x-colo", "validate-uuid", "zero-copy-send",
    ];
    for (const c of incompatible) if (caps[c]) throw genericError(`Background-snapshot is not compatible with ${c}`);
  }
  if (caps["zero-copy-send"] && (!caps.multifd || caps.compress || caps.xbzrle)) {
    throw genericError("Zero copy only available for non-compressed non-TLS multifd migration");
  }
  if (caps["postcopy-preempt"]) {
    if (!caps["postcopy-ram"]) throw genericError("Postcopy preempt requires postcopy-ram");
    if (caps.compress) throw genericError("Postcopy preempt not compatible with compress");
  }
  if (caps.multifd && caps.compress) throw genericError("Multifd is not compatible with compress");
}

/** QEMU 7.2's migrate_params_check(), in its order and words (C names with underscores). */
export function checkParameters(p: MigrationParameterValues, caps: Readonly<Record<MigrationCapability, boolean>>): void {
  if (p["compress-level"] > 9) invalid("compress_level", "a value between 0 and 9");
  if (p["compress-threads"] < 1) invalid("compress_threads", "a value between 1 and 255");
  if (p["decompress-threads"] < 1) invalid("decompress_threads", "a value between 1 and 255");
  const ttt = p["throttle-trigger-threshold"];
  if (ttt < 1 || ttt > 100) invalid("throttle_trigger_threshold", "an integer in the range of 1 to 100");
  const initial = p["cpu-throttle-initial"];
  if (initial < 1 || initial > 99) invalid("cpu_throttle_initial", "an integer in the range of 1 to 99");
  const inc = p["cpu-throttle-increment"];
  if (inc < 1 || inc > 99) invalid("cpu_throttle_increment", "an integer in the range of 1 to 99");
  // max-bandwidth: any uint64 fits SIZE_MAX on a 64-bit host, so QEMU's test never fires.
  if (big(p["downtime-limit"]) > BigInt(MAX_MIGRATE_DOWNTIME_MS)) {
    invalid("downtime_limit", "an integer in the range of 0 to (2000 * 1000) ms");
  }
  if (p["multifd-channels"] < 1) invalid("multifd_channels", "a value between 1 and 255");
  const cache = big(p["xbzrle-cache-size"]);
  if (cache < BigInt(MIGRATION_PAGE_SIZE) || (cache & (cache - 1n)) !== 0n) {
    invalid("xbzrle_cache_size", "a power of two no less than the target page size");
  }
  const maxThrottle = p["max-cpu-throttle"];
  if (maxThrottle < initial || maxThrottle > 99) invalid("max_cpu_throttle", "an integer in the range of cpu_throttle_initial to 99");
  if (big(p["announce-initial"]) > 100000n) invalid("announce_initial", "a value between 0 and 100000");
  if (big(p["announce-max"]) > 100000n) invalid("announce_max", "a value between 0 and 100000");
  if (big(p["announce-rounds"]) > 1000n) invalid("announce_rounds", "a value between 0 and 1000");
  const step = big(p["announce-step"]);
  if (step < 1n || step > 10000n) invalid("announce_step", "a value between 0 and 10000");
  if (caps["zero-copy-send"] && (p["multifd-compression"] !== "none" || p["tls-creds"] !== "")) {
    throw genericError("Zero copy only available for non-compressed non-TLS multifd migration");
  }
}
