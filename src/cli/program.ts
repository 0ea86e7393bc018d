// The commander definition of every sub-command. Each action hands over to its module and
// reports an exit status through `setStatus`.

import { Command, Option } from "commander";
import { MINIVM_VERSION } from "../version.js";
import type { MonitorConfig } from "../core/protocol.js";
import { parseChardev, parseMon, parseQmpEndpoint, toMonitorConfig, type ParsedEndpoint } from "../qmp/address.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface RunFlags {
  paused?: boolean;
  qmp: string[];
  chardev: string[];
  mon: string[];
  name?: string;
  shutdown: boolean;
}

/** Turn --qmp, --chardev and --mon into monitor configurations, as QEMU pairs them. */
export function monitorsFromFlags(flags: Pick<RunFlags, "qmp" | "chardev" | "mon">): MonitorConfig[] {
  const monitors = flags.qmp.map((q) => toMonitorConfig(parseQmpEndpoint(q)));
  const chardevs = new Map<string, ParsedEndpoint>();
  for (const c of flags.chardev) {
    const { id, endpoint } = parseChardev(c);
    if (chardevs.has(id)) throw new Error(`Duplicate chardev ID '${id}'`);
    chardevs.set(id, endpoint);
  }
  for (const m of flags.mon) {
    const mon = parseMon(m);
    const endpoint = chardevs.get(mon.chardev);
    if (endpoint === undefined) throw new Error(`chardev "${mon.chardev}" not found`);
    monitors.push(toMonitorConfig(mon.queueFull === undefined ? endpoint : { ...endpoint, queueFull: mon.queueFull }));
  }
  return monitors;
}

export function buildProgram(setStatus: (code: number) => void): Command {
  const program = new Command("minivm")
    .description("an educational virtual machine monitor: RISC-V virt guest, QMP with out-of-band commands, the big lock")
    .version(`minivm ${MINIVM_VERSION}`, "-V, --version")
    .showHelpAfterError()
    .exitOverride((err) => {
      throw err;
    });

  program
    .command("run")
    .description("start a virtual machine")
    .option("-S, --paused", "do not start the CPU (QEMU's -S): the VM waits in 'prelaunch' for `cont`")
    .option("--qmp <address>", "QMP monitor: unix:PATH or tcp:HOST:PORT, with ,server=on,wait=off,queue-full=suspend|drop (repeatable)", collect, [])
    .option("--chardev <spec>", "socket,id=ID,path=PATH|host=H,port=N,server=on,wait=off (repeatable)", collect, [])
    .option("--mon <spec>", "chardev=ID,mode=control[,queue-full=suspend|drop] (repeatable)", collect, [])
    .option("--name <name>", "the VM's name (query-name)")
    .addOption(new Option("--no-shutdown", "stop the VM instead of exiting when the guest shuts down"))
    .action(async (flags: RunFlags) => {
      const { runVm } = await import("./run.js");
      const monitors = monitorsFromFlags(flags);
      setStatus(
        await runVm({
          monitors,
          startPaused: flags.paused === true,
          noShutdown: !flags.shutdown,
          name: flags.name,
          announce: true,
        }),
      );
    });

  program
    .command("qmp")
    .description("interactive QMP shell (qmp-shell syntax) connected to ADDRESS")
    .argument("<address>", "unix:PATH, tcp:HOST:PORT, or a socket path")
    .option("-H, --hmp", "human monitor mode: lines are HMP commands sent through human-monitor-command")
    .option("-N, --skip-negotiation", "do not send qmp_capabilities")
    .option("-p, --pretty", "pretty-print replies")
    .action(async (address: string, flags: { hmp?: boolean; skipNegotiation?: boolean; pretty?: boolean }) => {
      const { shellMain } = await import("../qmp/shell.js");
      setStatus(await shellMain(address, { hmp: flags.hmp === true, negotiate: flags.skipNegotiation !== true, pretty: flags.pretty === true }));
    });

  program
    .command("qapi")
    .description("the QAPI schema toolchain: check, introspect, generate")
    .allowUnknownOption()
    .helpOption(false)
    .argument("[args...]")
    .action(async (args: string[]) => {
      const { qapiMain } = await import("../qapi/main.js");
      setStatus(await qapiMain(args));
    });

  return program;
}
