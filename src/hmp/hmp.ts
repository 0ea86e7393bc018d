// The human monitor (HMP), reached over QMP through `human-monitor-command`. Like QEMU's,
// it is a thin layer of text over the same commands QMP runs; output lines end "\r\n"
// because QEMU's monitor turns every "\n" into "\r\n". HMP runs on the core thread, in-band
// under the BQL, and reaches other commands only through the command table (ctx.call), so
// it needs nothing from the core at runtime and the monitor thread never loads it.

import type { CommandCaller, CoreContext } from "../core/handlers.js";
import type { Machine } from "../core/machine.js";
import type { QmpHandlers } from "../qapi/generated/commands.js";
import { hmpInfoBlock, hmpInfoBlockstats } from "../block/hmp-block.js";
import { QmpError } from "../qapi/error.js";
import { memoryDump, parseDumpFormat, type DumpDefaults } from "./hmp-memory.js";
import {
  HmpUsageError,
  formatInfoMigrate,
  formatInfoMigrateCapabilities,
  formatInfoMigrateParameters,
  parseSetCapability,
  parseSetParameter,
} from "./hmp-migration.js";

/** What HMP remembers between commands; QEMU keeps it for the whole process, not per monitor. */
export interface HmpState {
  lastDump: DumpDefaults;
}

export function createHmpState(): HmpState {
  return { lastDump: { format: "x", size: 4 } };
}
import { VERSION_INFO } from "../version.js";

export interface HmpContext extends CoreContext {
  call: CommandCaller;
}

interface HmpCommand {
  names: string[];
  args: string;
  help: string;
  run(ctx: HmpContext, args: string[]): string | Promise<string>;
}

interface InfoCommand {
  name: string;
  help: string;
  run(ctx: HmpContext): string | Promise<string>;
}

function statusLine(ctx: HmpContext): string {
  const st = ctx.runState.state;
  const running = ctx.runState.running;
  let line = `VM status: ${running ? "running" : "paused"}`;
  if (!running && st !== "paused") line += ` (${st})`;
  return line + "\n";
}

function formatNs(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(3)} s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(3)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(3)} us`;
  return `${ns} ns`;
}

function needMachine(ctx: HmpContext): Machine {
  if (ctx.machine === null) throw new QmpError("GenericError", "no CPU: this VM has no guest to run");
  return ctx.machine;
}

function parseAddress(text: string | undefined): number {
  // QEMU's expression parser (monitor/hmp.c expr_unary) on an empty argument.
  if (text === undefined) throw new HmpUsageError("unexpected end of expression");
  const v = Number(text);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new QmpError("GenericError", `invalid address '${text}'`);
  return v;
}

function dumpCommand(physical: boolean) {
  return (ctx: HmpContext, args: string[]): string => {
    const machine = needMachine(ctx);
    let fmt: string | undefined;
    if (args[0]?.startsWith("/")) fmt = args.shift();
    let r;
    try {
      r = parseDumpFormat(fmt, ctx.hmpState.lastDump);
      ctx.hmpState.lastDump = { format: r.format, size: r.size };
    } catch (e) {
      throw new QmpError("GenericError", e instanceof Error ? e.message : String(e));
    }
    return memoryDump(machine, r, parseAddress(args[0]), physical);
  };
}

const INFO: InfoCommand[] = [
  { name: "status", help: "show the current VM status (running|paused)", run: statusLine },
  {
    name: "version",
    help: "show the version of QEMU",
    // QEMU prints the package right after the version, with no separator.
    run: () => `${VERSION_INFO.qemu.major}.${VERSION_INFO.qemu.minor}.${VERSION_INFO.qemu.micro}${VERSION_INFO.package}\n`,
  },
  {
    name: "name",
    help: "show the current VM name",
    run: (ctx) => (ctx.name === undefined ? "" : `${ctx.name}\n`),
  },
  {
    name: "cpus",
    help: "show infos for each CPU",
    run: (ctx) => (ctx.machine === null ? "" : `* CPU #0: thread_id=${ctx.coreThreadId}\n`),
  },
  { name: "registers", help: "show the cpu registers", run: (ctx) => needMachine(ctx).infoRegisters() },
  { name: "mtree", help: "show memory tree", run: (ctx) => needMachine(ctx).mtree() },
  { name: "block", help: "show the block devices", run: async (ctx) => hmpInfoBlock(await ctx.call("query-block", {})) },
  {
    name: "blockstats",
    help: "show block device statistics",
    run: async (ctx) => hmpInfoBlockstats(await ctx.call("query-blockstats", {})),
  },
  {
    name: "bql",
    help: "show who holds the big lock and how it has been used",
    run: async (ctx) => {
      const info = await ctx.call("x-query-bql", {});
      let out = info.holder === undefined ? "BQL: free\n" : `BQL: held by ${info.holder} for ${formatNs(Number(info["held-ns"] ?? 0))}\n`;
      out += `acquisitions: ${info.acquisitions}, contended: ${info.contended}\n`;
      out += "thread           acquisitions  contended  total hold    longest hold  total wait\n";
      for (const t of info.threads) {
        out += `${t.thread.padEnd(16)} ${String(t.acquisitions).padStart(12)}  ${String(t.contended).padStart(9)}  ${formatNs(Number(t["total-hold-ns"])).padStart(12)}  ${formatNs(Number(t["longest-hold-ns"])).padStart(12)}  ${formatNs(Number(t["total-wait-ns"])).padStart(10)}\n`;
      }
      return out;
    },
  },
  { name: "migrate", help: "show migration status", run: async (ctx) => formatInfoMigrate(await ctx.call("query-migrate", {})) },
  {
    name: "migrate_capabilities",
    help: "show current migration capabilities",
    run: async (ctx) => formatInfoMigrateCapabilities(await ctx.call("query-migrate-capabilities", {})),
  },
  {
    name: "migrate_parameters",
    help: "show current migration parameters",
    run: async (ctx) => formatInfoMigrateParameters(await ctx.call("query-migrate-parameters", {})),
  },
];

/** HMP's `migrate [-d] [-b] [-i] [-r] uri`. */
function hmpMigrate(ctx: HmpContext, args: string[]): string {
  const flags = new Set<string>();
  while (args[0] !== undefined && /^-[dbir]$/.test(args[0])) flags.add(args.shift() as string);
  const uri = args[0];
  if (uri === undefined) throw new HmpUsageError("migrate: string expected");
  ctx.call("migrate", { uri, blk: flags.has("-b"), inc: flags.has("-i"), resume: flags.has("-r") });
  // QEMU waits for the end of a migration by suspending the monitor, which a monitor reached
  // through human-monitor-command cannot do; it says so and goes on detached.
  return flags.has("-d") ? "" : "terminal does not allow synchronous migration, continuing detached\n";
}

const COMMANDS: HmpCommand[] = [
  { names: ["cont", "c"], args: "", help: "resume emulation", run: (ctx) => (ctx.call("cont", {}), "") },
  { names: ["stop", "s"], args: "", help: "stop emulation", run: (ctx) => (ctx.call("stop", {}), "") },
  { names: ["system_reset"], args: "", help: "reset the system", run: (ctx) => (ctx.call("system_reset", {}), "") },
  { names: ["system_powerdown"], args: "", help: "send system power down event", run: (ctx) => (ctx.call("system_powerdown", {}), "") },
  { names: ["quit", "q"], args: "", help: "quit the emulator", run: (ctx) => (ctx.call("quit", {}), "") },
  { names: ["migrate"], args: "[-d] [-b] [-i] [-r] uri", help: "migrate to URI (using -d to not wait for completion)", run: hmpMigrate },
  { names: ["migrate_cancel"], args: "", help: "cancel the current VM migration", run: (ctx) => (ctx.call("migrate_cancel", {}), "") },
  {
    names: ["migrate_set_capability"],
    args: "capability state",
    help: "Enable/Disable the usage of a capability for migration",
    run: (ctx, args) => (ctx.call("migrate-set-capabilities", { capabilities: [parseSetCapability(args)] }), ""),
  },
  {
    names: ["migrate_set_parameter"],
    args: "parameter value",
    help: "Set the parameter for migration",
    run: (ctx, args) => {
      const [name, value] = args;
      if (name === undefined || value === undefined) throw new HmpUsageError("migrate_set_parameter: string expected");
      ctx.call("migrate-set-parameters", parseSetParameter(name, value));
      return "";
    },
  },
  { names: ["x"], args: "/fmt addr", help: "virtual memory dump starting at 'addr'", run: dumpCommand(false) },
  { names: ["xp"], args: "/fmt addr", help: "physical memory dump starting at 'addr'", run: dumpCommand(true) },
  {
    names: ["info"],
    args: "[subcommand]",
    help: "show various information about the system state",
    run: (ctx, args) => {
      const sub = args[0];
      if (sub === undefined) return INFO.map((i) => `info ${i.name}  -- ${i.help}\n`).join("");
      const cmd = INFO.find((i) => i.name === sub);
      if (cmd === undefined) return `unknown command: 'info ${sub}'\n`;
      return cmd.run(ctx);
    },
  },
  {
    names: ["help", "?"],
    args: "[cmd]",
    help: "show the help",
    run: (_ctx, args) => {
      const list = args[0] === undefined ? COMMANDS : COMMANDS.filter((c) => c.names.includes(args[0] ?? ""));
      if (args[0] === "info") return INFO.map((i) => `info ${i.name}  -- ${i.help}\n`).join("");
      return list.map((c) => `${c.names.join("|")} ${c.args}${c.args ? " " : ""}-- ${c.help}\n`).join("");
    },
  },
];

/** Run one HMP command line and return its output with QEMU's "\r\n" line ends. */
export async function runHmp(line: string, ctx: HmpContext): Promise<string> {
  const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
  const name = words[0];
  if (name === undefined) return "";
  const cmd = COMMANDS.find((c) => c.names.includes(name));
  let out: string;
  if (cmd === undefined) {
    out = `unknown command: '${name}'\n`;
  } else {
    try {
      out = await cmd.run(ctx, words.slice(1));
    } catch (e) {
      // HMP prints a command's error as "Error: desc", it does not fail the QMP call.
      if (e instanceof QmpError) out = `Error: ${e.message}\n`;
      else if (e instanceof HmpUsageError) out = `${e.message}\nTry "help ${name}" for more information\n`;
      else throw e;
    }
  }
  return out.replace(/\r?\n/g, "\r\n");
}

/** The `human-monitor-command` entry of the command table. */
export function createHmpHandlers(ctx: HmpContext): Pick<QmpHandlers, "human-monitor-command"> {
  return { "human-monitor-command": ({ "command-line": line }) => runHmp(line, ctx) };
}

/** Every HMP command and info subcommand name, for completion in `minivm qmp --hmp`. */
export function hmpCompletions(): string[] {
  return [...COMMANDS.flatMap((c) => c.names), ...INFO.map((i) => `info ${i.name}`)];
}
