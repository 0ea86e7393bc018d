// HMP's migration commands, in QEMU 7.2's text (monitor/hmp-cmds.c: hmp_info_migrate,
// hmp_info_migrate_capabilities, hmp_info_migrate_parameters, hmp_migrate,
// hmp_migrate_set_capability, hmp_migrate_set_parameter). Like QEMU's they are text over the
// QMP commands; the formatters are pure functions of the QMP replies.

import { QmpError, genericError } from "../qapi/error.js";
import {
  MigrationCapability_VALUES,
  MigrationParameter_VALUES,
  MultiFDCompression_VALUES,
  type MigrateSetParameters,
  type MigrationCapability,
  type MigrationCapabilityStatus,
  type MigrationInfo,
  type MigrationParameter,
  type MigrationParameters,
} from "../qapi/generated/types.js";

/**
 * QEMU's migration_global_dump(): the migration object's global properties. minivm's stream
 * has the configuration section and section footers, like QEMU's defaults.
 */
const GLOBALS =
  "globals:\nstore-global-state: on\nonly-migratable: off\nsend-configuration: on\nsend-section-footer: on\n" +
  "decompress-error-check: on\nclear-bitmap-shift: 18\n";

function kib(v: number | bigint): string {
  return String(BigInt(v) >> 10n);
}

/** `info migrate`. */
export function formatInfoMigrate(info: MigrationInfo): string {
  let out = GLOBALS;
  if (info["blocked-reasons"] !== undefined) {
    out += "Outgoing migration blocked:\n";
    for (const r of info["blocked-reasons"]) out += `  ${r}\n`;
  }
  if (info.status !== undefined) {
    out += `Migration status: ${info.status}`;
    out += info.status === "failed" && info["error-desc"] !== undefined ? ` (${info["error-desc"]})\n` : "\n";
    // QEMU prints total time even when the reply has none (it is then 0).
    out += `total time: ${info["total-time"] ?? 0} ms\n`;
    if (info["expected-downtime"] !== undefined) out += `expected downtime: ${info["expected-downtime"]} ms\n`;
    if (info.downtime !== undefined) out += `downtime: ${info.downtime} ms\n`;
    if (info["setup-time"] !== undefined) out += `setup: ${info["setup-time"]} ms\n`;
  }
  const ram = info.ram;
  if (ram !== undefined) {
    out += `transferred ram: ${kib(ram.transferred)} kbytes\n`;
    out += `throughput: ${ram.mbps.toFixed(2)} mbps\n`;
    out += `remaining ram: ${kib(ram.remaining)} kbytes\n`;
    out += `total ram: ${kib(ram.total)} kbytes\n`;
    out += `duplicate: ${ram.duplicate} pages\n`;
    out += `skipped: ${ram.skipped} pages\n`;
    out += `normal: ${ram.normal} pages\n`;
    out += `normal bytes: ${kib(ram["normal-bytes"])} kbytes\n`;
    out += `dirty sync count: ${ram["dirty-sync-count"]}\n`;
    out += `page size: ${kib(ram["page-size"])} kbytes\n`;
    out += `multifd bytes: ${kib(ram["multifd-bytes"])} kbytes\n`;
    out += `pages-per-second: ${ram["pages-per-second"]}\n`;
    if (Number(ram["dirty-pages-rate"]) !== 0) out += `dirty pages rate: ${ram["dirty-pages-rate"]} pages\n`;
    if (Number(ram["postcopy-requests"]) !== 0) out += `postcopy request count: ${ram["postcopy-requests"]}\n`;
    if (Number(ram["precopy-bytes"]) !== 0) out += `precopy ram: ${kib(ram["precopy-bytes"])} kbytes\n`;
    if (Number(ram["downtime-bytes"]) !== 0) out += `downtime ram: ${kib(ram["downtime-bytes"])} kbytes\n`;
    if (Number(ram["postcopy-bytes"]) !== 0) out += `postcopy ram: ${kib(ram["postcopy-bytes"])} kbytes\n`;
    if (Number(ram["dirty-sync-missed-zero-copy"]) !== 0) {
      out += `Zero-copy-send fallbacks happened: ${ram["dirty-sync-missed-zero-copy"]} times\n`;
    }
  }
  if (info["cpu-throttle-percentage"] !== undefined) out += `cpu throttle percentage: ${info["cpu-throttle-percentage"]}\n`;
  return out;
}

/** `info migrate_capabilities`. */
export function formatInfoMigrateCapabilities(caps: readonly MigrationCapabilityStatus[]): string {
  return caps.map((c) => `${c.capability}: ${c.state ? "on" : "off"}\n`).join("");
}

const onOff = (b: boolean | undefined): string => (b === true ? "on" : "off");

/** `info migrate_parameters`: QEMU 7.2's order and units (it leaves the multifd levels out). */
export function formatInfoMigrateParameters(p: MigrationParameters): string {
  const v = (x: number | bigint | undefined): string => String(x ?? 0);
  return [
    `announce-initial: ${v(p["announce-initial"])} ms`,
    `announce-max: ${v(p["announce-max"])} ms`,
    `announce-rounds: ${v(p["announce-rounds"])}`,
    `announce-step: ${v(p["announce-step"])} ms`,
    `compress-level: ${v(p["compress-level"])}`,
    `compress-threads: ${v(p["compress-threads"])}`,
    `compress-wait-thread: ${onOff(p["compress-wait-thread"])}`,
    `decompress-threads: ${v(p["decompress-threads"])}`,
    `throttle-trigger-threshold: ${v(p["throttle-trigger-threshold"])}`,
    `cpu-throttle-initial: ${v(p["cpu-throttle-initial"])}`,
    `cpu-throttle-increment: ${v(p["cpu-throttle-increment"])}`,
    `cpu-throttle-tailslow: ${onOff(p["cpu-throttle-tailslow"])}`,
    `max-cpu-throttle: ${v(p["max-cpu-throttle"])}`,
    `tls-creds: '${p["tls-creds"] ?? ""}'`,
    `tls-hostname: '${p["tls-hostname"] ?? ""}'`,
    `max-bandwidth: ${v(p["max-bandwidth"])} bytes/second`,
    `downtime-limit: ${v(p["downtime-limit"])} ms`,
    `x-checkpoint-delay: ${v(p["x-checkpoint-delay"])} ms`,
    `block-incremental: ${onOff(p["block-incremental"])}`,
    `multifd-channels: ${v(p["multifd-channels"])}`,
    `multifd-compression: ${p["multifd-compression"] ?? "none"}`,
    `xbzrle-cache-size: ${v(p["xbzrle-cache-size"])} bytes`,
    `max-postcopy-bandwidth: ${v(p["max-postcopy-bandwidth"])}`,
    `tls-authz: '${p["tls-authz"] ?? ""}'`,
  ]
    .map((l) => l + "\n")
    .join("");
}

/** An HMP argument-parsing failure: printed as is, followed by QEMU's "Try help" line. */
export class HmpUsageError extends Error {}

const SIZE_SUFFIX: Readonly<Record<string, number>> = { b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };

/** QEMU's qemu_strtosz() family: a number with an optional k/M/G/T/P/E suffix; null if bad. */
export function parseSize(text: string, defaultShift: number): bigint | null {
  const m = /^(\d+(?:\.\d*)?)([bkmgtpe]?)$/i.exec(text.trim());
  if (m === null) return null;
  const shift = m[2] === "" ? defaultShift : (SIZE_SUFFIX[(m[2] as string).toLowerCase()] as number);
  const [whole = "0", frac = ""] = (m[1] as string).split(".");
  // A fraction is allowed only with a unit bigger than a byte (QEMU's rule).
  if (frac !== "" && shift === 0) return null;
  const scale = 10n ** BigInt(frac.length);
  const v = ((BigInt(whole) * scale + BigInt(frac === "" ? "0" : frac)) << BigInt(shift)) / scale;
  return v >= 2n ** 64n ? null : v;
}

function sizeError(name: string): QmpError {
  return genericError(
    `Parameter '${name}' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.`,
  );
}

function parseBoolWord(name: string, text: string): boolean {
  if (["on", "yes", "true", "y"].includes(text)) return true;
  if (["off", "no", "false", "n"].includes(text)) return false;
  throw genericError(`Parameter '${name}' expects 'on' or 'off'`);
}

/** The string-input visitor's unsigned integers: uint64 first, then the C type's range. */
function parseUint(name: string, text: string, bits: number): number {
  if (!/^\d+$/.test(text.trim())) throw genericError(`Parameter '${name}' expects uint64`);
  const v = BigInt(text.trim());
  if (v >= 2n ** 64n) throw genericError(`Parameter '${name}' expects uint64`);
  if (bits < 64 && v >= 2n ** BigInt(bits)) throw genericError(`Parameter '${name}' expects uint${bits}_t`);
  return Number(v);
}

const SIZE_PARAMETERS: readonly MigrationParameter[] = [
  "announce-initial", "announce-max", "announce-rounds", "announce-step", "downtime-limit", "xbzrle-cache-size", "max-postcopy-bandwidth",
];
const BOOL_PARAMETERS: readonly MigrationParameter[] = ["compress-wait-thread", "cpu-throttle-tailslow", "block-incremental"];
const STRING_PARAMETERS: readonly MigrationParameter[] = ["tls-creds", "tls-hostname", "tls-authz"];

/** QEMU 7.2's hmp_migrate_set_parameter(): one parameter from its text form. */
export function parseSetParameter(name: string, value: string): MigrateSetParameters {
  if (!(MigrationParameter_VALUES as readonly string[]).includes(name)) throw genericError(`invalid parameter value: ${name}`);
  const p = name as MigrationParameter;
  if (p === "max-bandwidth") {
    // QEMU reads a bare number as MiB/s here, unlike every other size.
    const v = parseSize(value, 20);
    if (v === null || v > 2n ** 63n - 1n) throw genericError(`Invalid size ${value}`);
    return { "max-bandwidth": v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v };
  }
  if (SIZE_PARAMETERS.includes(p)) {
    const v = parseSize(value, 0);
    if (v === null) throw sizeError(p);
    return { [p]: v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v };
  }
  if (BOOL_PARAMETERS.includes(p)) return { [p]: parseBoolWord(p, value) };
  if (STRING_PARAMETERS.includes(p)) return { [p]: value };
  if (p === "multifd-compression") {
    if (!(MultiFDCompression_VALUES as readonly string[]).includes(value)) {
      throw genericError(`Parameter '${p}' does not accept value '${value}'`);
    }
    return { "multifd-compression": value as MigrateSetParameters["multifd-compression"] };
  }
  return { [p]: parseUint(p, value, p === "x-checkpoint-delay" ? 32 : 8) };
}

/** QEMU 7.2's hmp_migrate_set_capability(): NAME and an on/off flag. */
export function parseSetCapability(args: readonly string[]): MigrationCapabilityStatus {
  const [name, state] = args;
  if (name === undefined) throw new HmpUsageError("migrate_set_capability: string expected");
  if (state !== "on" && state !== "off") throw new HmpUsageError("Expected 'on' or 'off'");
  if (!(MigrationCapability_VALUES as readonly string[]).includes(name)) throw genericError(`invalid parameter value: ${name}`);
  return { capability: name as MigrationCapability, state: state === "on" };
}
