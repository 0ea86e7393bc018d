// The commander definition of every sub-command. Each action hands over to its module and
// reports an exit status through `setStatus`.

import { Command, Option } from "commander";
import { MINIVM_VERSION } from "../version.js";
import { BUILTIN_DISK, DEFAULT_FIRMWARE, packageFile } from "./builtin.js";
import type { MachineConfig, MonitorConfig } from "../core/protocol.js";
import { parseChardev, parseMon, parseQmpEndpoint, splitOptions, toMonitorConfig, type ParsedEndpoint } from "../qmp/address.js";
import { parseJsonValue } from "../qmp/json-streamer.js";
import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import type { BlockdevOptions } from "../qapi/generated/types.js";
import { parseDashboardAddress } from "../dashboard/address.js";
import { ObjectRegistry, parseObjectOption } from "../crypto/objects.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface RunFlags {
  drive: string[];
  blockdev: string[];
  device: string[];
  memory: string;
  kernel?: string;
  bios?: string;
  append?: string;
  initrd?: string;
  guest?: string;
  serial?: string;
  paused?: boolean;
  incoming?: string;
  qmp: string[];
  chardev: string[];
  mon: string[];
  name?: string;
  shutdown: boolean;
  dumpVmstate?: string;
  trace?: string;
  traceEvents?: string;
  dashboard?: string;
  machine?: string;
  display?: string;
  nographic?: boolean;
  smp?: string;
  accel?: string;
  reboot: boolean;
  daemonize?: boolean;
  pidfile?: string;
  object: string[];
  s?: boolean;
  gdb?: string;
  cpu?: string;
}

export type SerialConfig = "stdio" | "none" | { unix: string } | { file: string } | { chardev: string };

/** `--chardev` options by id. */
export function chardevsFromFlags(flags: Pick<RunFlags, "chardev">): Map<string, ParsedEndpoint> {
  const chardevs = new Map<string, ParsedEndpoint>();
  for (const c of flags.chardev) {
    const { id, endpoint } = parseChardev(c);
    if (chardevs.has(id)) throw new Error(`Duplicate chardev ID '${id}'`);
    chardevs.set(id, endpoint);
  }
  return chardevs;
}

/**
 * A chardev's TLS, resolved against the objects once every option is read (so `-chardev` may
 * name an `-object` that comes after it, as QEMU's machine-done hook allows).
 */
export function chardevTls(id: string, endpoint: ParsedEndpoint, objects: ObjectRegistry | undefined): MonitorConfig["tls"] {
  if (endpoint.tls === undefined) return undefined;
  if (!endpoint.server) throw new Error(`chardev '${id}': minivm supports tls-creds on server=on sockets only`);
  if (objects === undefined) throw new Error(`No TLS credentials with id '${endpoint.tls.creds}'`);
  return { chardev: id, creds: objects.tlsCreds(endpoint.tls.creds, "server"), authz: endpoint.tls.authz };
}

/** Turn --qmp, --chardev and --mon into monitor configurations, as QEMU pairs them. */
export function monitorsFromFlags(flags: Pick<RunFlags, "qmp" | "chardev" | "mon">, objects?: ObjectRegistry): MonitorConfig[] {
  const monitors = flags.qmp.map((q, i) => ({ ...toMonitorConfig(parseQmpEndpoint(q)), chardevId: `compat_monitor${i}` }));
  const chardevs = chardevsFromFlags(flags);
  for (const m of flags.mon) {
    const mon = parseMon(m);
    const endpoint = chardevs.get(mon.chardev);
    if (endpoint === undefined) throw new Error(`chardev "${mon.chardev}" not found`);
    const config = { ...toMonitorConfig(mon.queueFull === undefined ? endpoint : { ...endpoint, queueFull: mon.queueFull }), chardevId: mon.chardev };
    const tls = chardevTls(mon.chardev, endpoint, objects);
    monitors.push(tls === undefined ? config : { ...config, tls });
  }
  return monitors;
}

/** `-blockdev`: JSON, or QEMU's dotted key=value form; checked by the schema's own visitor. */
export function parseBlockdev(text: string): BlockdevOptions {
  let raw: unknown;
  if (text.trimStart().startsWith("{")) {
    try {
      raw = parseJsonValue(text);
    } catch (e) {
      // QEMU names the option and its argument, then the parser's words.
      throw new Error(`-blockdev ${text}: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else {
    const root: Record<string, unknown> = {};
    for (const part of splitOptions(text)) {
      const eq = part.indexOf("=");
      if (eq <= 0) throw new Error(`-blockdev: '${part}' is not key=value`);
      const path = part.slice(0, eq).split(".");
      let value: unknown = part.slice(eq + 1);
      if (value === "on") value = true;
      else if (value === "off") value = false;
      else if (value === "null" && path[path.length - 1] === "backing") value = null;
      else if (/^\d+$/.test(value as string) && ["offset", "size"].includes(path[path.length - 1] ?? "")) value = Number(value);
      let obj = root;
      for (const k of path.slice(0, -1)) obj = (obj[k] ??= {}) as Record<string, unknown>;
      obj[path[path.length - 1] as string] = value;
    }
    raw = root;
  }
  const spec = QMP_COMMANDS.get("blockdev-add");
  if (spec === undefined) throw new Error("blockdev-add is missing from the schema");
  try {
    return spec.parseArgs(raw as Record<string, unknown>) as BlockdevOptions;
  } catch (e) {
    throw new Error(`-blockdev ${text}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** `-device virtio-blk-device,drive=NODE[,id=ID]`: the only device minivm plugs by hand. */
export function parseDevice(text: string): { drive: string; id: string | undefined } {
  const [driver = "", ...rest] = splitOptions(text);
  if (driver !== "virtio-blk-device") throw new Error(`'${driver}' is not a valid device model name (minivm has virtio-blk-device)`);
  let drive: string | undefined;
  let id: string | undefined;
  for (const p of rest) {
    const [k, v = ""] = p.split("=", 2) as [string, string?];
    if (k === "drive") drive = v;
    else if (k === "id") id = v;
    else throw new Error(`virtio-blk-device: property '${k}' not found`);
  }
  if (drive === undefined) throw new Error("virtio-blk-device: Drive property not set");
  return { drive, id };
}

/** `--serial stdio|mon:stdio|none|file:PATH|unix:PATH[,server=on,wait=off]`. */
export function parseSerial(text: string): SerialConfig {
  if (text === "stdio" || text === "none") return text;
  // A -chardev socket by id (for TLS: `-chardev socket,...,tls-creds=ID -serial chardev:ID`).
  if (text.startsWith("chardev:")) return { chardev: text.slice("chardev:".length) };
  // QEMU's mon:stdio multiplexes its HMP monitor onto the console; minivm's console has the
  // same Ctrl-A escapes but no HMP on it, so the console is what the user gets.
  if (text === "mon:stdio") return "stdio";
  if (text.startsWith("file:")) {
    const path = text.slice(5);
    if (path === "") throw new Error("--serial file: needs a path");
    return { file: path };
  }
  if (text.startsWith("unix:")) {
    const [path = "", ...opts] = splitOptions(text.slice(5));
    for (const o of opts) {
      if (o !== "server" && o !== "server=on" && o !== "wait=off" && o !== "nowait") {
        throw new Error(`--serial ${text}: minivm's serial socket is always server=on,wait=off ('${o}')`);
      }
    }
    if (path === "") throw new Error("--serial unix: needs a path");
    return { unix: path };
  }
  throw new Error(`'${text}' is not a valid char driver: use stdio, mon:stdio, none, file:PATH or unix:PATH`);
}

/** QEMU's -m: a number of MiB, or a number with a K, M, G or T suffix. */
export function parseMemorySize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (m === null) throw new Error(`Parameter 'size' expects a size: '${text}'`);
  const unit = (m[2] ?? "").toUpperCase();
  const mult = unit === "K" ? 1 << 10 : unit === "G" ? 1 << 30 : unit === "T" ? 2 ** 40 : 1 << 20;
  const bytes = Math.round(Number(m[1]) * mult);
  // Sv32 guests on the virt board keep RAM below 4 GiB: 0x8000_0000 + size.
  if (bytes < 1 << 20 || bytes > 2 ** 31) throw new Error(`invalid RAM size ${text}: minivm's riscv32 virt takes 1M to 2G`);
  return bytes;
}

/** `-M`/`-machine`: minivm is QEMU's riscv32 virt board and nothing else. Options after the type are QEMU's too. */
export function checkMachine(text: string): void {
  const type = text.split(",")[0] ?? "";
  if (type.startsWith("type=") ? type.slice(5) === "virt" : type === "virt") return;
  // QEMU 7.2's words for any other type (hw/core/machine.c via vl.c's select_machine).
  throw new Error("unsupported machine type\nUse -machine help to list supported machines");
}

/** `-smp N`: one hart until minivm grows SMP. */
export function checkSmp(text: string): void {
  const first = text.split(",")[0] ?? "";
  const n = first.startsWith("cpus=") ? first.slice(5) : first;
  if (!/^\d+$/.test(n)) throw new Error(`-smp ${text}: expected a number of CPUs`);
  if (Number(n) !== 1) throw new Error(`-smp ${text}: minivm has one hart; SMP is not supported yet (use -smp 1)`);
}

/**
 * The firmware and the device tree must both fit in RAM without overlapping: the device tree
 * goes where QEMU's riscv_load_fdt puts it (below the end of RAM, 2 MiB-aligned), so with too
 * little RAM it would land on the firmware and the machine would hang silently.
 */
async function checkRamHolds(ramSize: number, image: Uint8Array | null, what: string, append: string | undefined): Promise<void> {
  const { RAM_BASE } = await import("../core/board.js");
  const { buildVirtFdt, encodeFdt, fdtLoadAddress } = await import("../core/fdt.js");
  const { parseElf } = await import("../core/elf.js");
  const dtbSize = encodeFdt(buildVirtFdt({ ramBase: RAM_BASE, ramSize, bootargs: append })).length;
  const fdtAddr = fdtLoadAddress(RAM_BASE, ramSize, dtbSize);
  let imageEnd = RAM_BASE;
  if (image !== null) {
    const isElf = image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46;
    if (isElf) for (const seg of parseElf(image).segments) imageEnd = Math.max(imageEnd, seg.paddr + seg.memsz);
    else imageEnd = RAM_BASE + image.length;
  }
  if (fdtAddr < imageEnd || fdtAddr < RAM_BASE) {
    const mib = ramSize / (1 << 20);
    throw new Error(
      `-m ${mib}M is too small: the ${what} needs RAM up to 0x${imageEnd.toString(16)} and the device tree ` +
        `(${dtbSize} bytes) would be placed at 0x${(fdtAddr >>> 0).toString(16)}, over it; give at least -m 4M`,
    );
  }
}

/** QEMU's `-cpu rv32[,c=on|off|true|false]`: whether the hart has the C extension. */
function parseCpu(spec: string | undefined): boolean {
  if (spec === undefined) return true;
  const [model, ...props] = spec.split(",");
  if (model !== "rv32") throw new Error(`-cpu ${model ?? ""}: minivm's hart is 'rv32'`);
  let rvc = true;
  for (const p of props) {
    const [k, v] = p.split("=");
    if (k !== "c") throw new Error(`-cpu ${spec}: minivm knows only the property 'c'`);
    if (v === "on" || v === "true") rvc = true;
    else if (v === "off" || v === "false") rvc = false;
    else throw new Error(`Parameter 'c' expects 'on' or 'off'`);
  }
  return rvc;
}

async function machineFromFlags(flags: RunFlags, guest: import("./linux-guest.js").GuestFiles | null = null): Promise<MachineConfig | null> {
  const { readFile } = await import("node:fs/promises");
  const ramSize = parseMemorySize(flags.memory);
  const read = async (what: string, path: string): Promise<Uint8Array> => {
    try {
      return new Uint8Array(await readFile(path));
    } catch (e) {
      throw new Error(`could not load ${what} '${path}': ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const kernel = flags.kernel === undefined ? guest?.kernel ?? null : await read("kernel", flags.kernel);
  // Like QEMU, a firmware runs first unless told `--bios none`: minivm's own SBI.
  let bios: Uint8Array | null = null;
  if (flags.bios === undefined) bios = await read("firmware", packageFile(DEFAULT_FIRMWARE));
  else if (flags.bios !== "none") bios = await read("firmware", flags.bios);
  if (flags.initrd !== undefined && kernel === null) throw new Error("-initrd only allowed with -kernel option");
  const initrd = flags.initrd === undefined ? guest?.initrd ?? null : await read("initrd", flags.initrd);
  if (kernel === null && bios === null) return null;
  // The image at the DRAM base is the firmware, or the kernel when there is none.
  const append = flags.append ?? guest?.append;
  await checkRamHolds(ramSize, bios ?? kernel, bios !== null ? "firmware" : "kernel", append);
  return { ramSize, kernel, bios, append, initrd, rvc: parseCpu(flags.cpu) };
}

export function buildProgram(setStatus: (code: number) => void, fixMessage: (message: string) => string = (m) => m): Command {
  const program = new Command("minivm")
    // Set before the sub-commands are added: they inherit it.
    .configureOutput({ outputError: (text, write) => write(fixMessage(text)) })
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
    .option("--incoming <uri>", "wait in 'inmigrate' for a migration from tcp:HOST:PORT, unix:PATH, exec:CMD or file:PATH, or 'defer' to name it later with migrate-incoming (QEMU's -incoming)")
    .option("--qmp <address>", "QMP monitor: unix:PATH or tcp:HOST:PORT, with ,server=on,wait=off,queue-full=suspend|drop (repeatable)", collect, [])
    .option("--chardev <spec>", "socket,id=ID,path=PATH|host=H,port=N,server=on,wait=off (repeatable)", collect, [])
    .option("--mon <spec>", "chardev=ID,mode=control[,queue-full=suspend|drop] (repeatable)", collect, [])
    .option("--name <name>", "the VM's name (query-name)")
    .option("-m, --memory <size>", "guest RAM, QEMU's syntax: 128, 128M, 1G (MiB when no suffix)", "128M")
    .option("--kernel <elf>", "load an ELF at its physical addresses (QEMU's -kernel)")
    .option("--bios <file|none>", "firmware at 0x80000000 (default: minivm's SBI), or 'none' to boot --kernel directly in M-mode")
    .option("--append <cmdline>", "kernel command line (/chosen/bootargs)")
    .option("--guest <name>", "boot a guest minivm ships: 'linux' (Linux 6.1 with its initramfs and disk; docs/linux-guest.md)")
    .option("--initrd <file>", "initial ramdisk placed after the kernel, named in /chosen (QEMU's -initrd; needs --kernel)")
    .option("--serial <stdio|mon:stdio|none|file:PATH|unix:PATH>", "where the guest's serial console goes (default stdio; none with --daemonize)")
    .option("-M, --machine <type>", "the board: only 'virt' (QEMU's riscv32 virt)")
    .option("--smp <n>", "number of harts: only 1")
    .option("--accel <engine>", "how guest code runs: jit (the block compiler, default; cold code runs on the interpreter), interp (the interpreter alone) or check (both, compared after every compiled block; slow)")
    .option("--display <type>", "minivm has no display: only 'none'")
    .option("--nographic", "no display, console on stdio (minivm's default)")
    .option("-s", "shorthand for -gdb tcp::1234 (QEMU's -s)")
    .option("--gdb <dev>", "GDB remote stub on tcp:[HOST]:PORT, loopback when HOST is empty (QEMU's -gdb)")
    .option("--cpu <model>", "the hart: rv32, with ,c=false to leave out the C extension (QEMU's -cpu)")
    .option("--no-reboot", "exit instead of rebooting when the guest or system_reset asks for a reset")
    .option("--daemonize", "detach once the monitors listen; the parent exits 0 then (QEMU's -daemonize)")
    .option("--pidfile <file>", "write the process id to FILE, removed at exit (QEMU's -pidfile)")
    .option("--drive <spec>", "file=PATH,format=raw|qcow2,if=virtio|none,id=ID,readonly=on,snapshot=on (repeatable)", collect, [])
    .option("--blockdev <spec>", "a block node, as JSON or driver=...,node-name=...,file.driver=file,file.filename=... (repeatable)", collect, [])
    .option("--device <spec>", "virtio-blk-device,drive=NODE[,id=ID] (repeatable)", collect, [])
    .option("--object <spec>", "tls-creds-x509|tls-creds-psk|authz-simple|authz-list,id=ID,... or JSON (QEMU's -object; repeatable; see docs/tls.md)", collect, [])
    .addOption(new Option("--no-shutdown", "stop the VM instead of exiting when the guest shuts down"))
    .option("--trace <file>", "write the trace points to FILE as Chrome trace-event JSON (open it in ui.perfetto.dev or chrome://tracing)")
    .option("--trace-events <patterns>", "which trace points record: comma-separated globs, -GLOB removes (QEMU's -trace); 'help' lists them")
    .option("--dashboard <[host:]port>", "serve the live teaching view (console, BQL and QMP lanes, migration, block latency) at http://HOST:PORT/ with a token it prints; host defaults to 127.0.0.1")
    .option("--dump-vmstate <file>", "write every VMState description as JSON (QEMU's -dump-vmstate, for scripts/vmstate-static-checker.py) and exit")
    .argument("[disk]", "a disk image to boot from (raw or qcow2, probed): the same as --drive file=DISK,if=virtio; default: the teaching disk, copy-on-write")
    .action(async (disk: string | undefined, flags: RunFlags) => {
      if (flags.traceEvents === "help") {
        const { TRACE_EVENTS } = await import("../trace/events.js");
        for (const e of TRACE_EVENTS) process.stdout.write(`${e.name}(${e.args.join(", ")})  ${e.doc}\n`);
        return;
      }
      if (flags.dumpVmstate !== undefined) {
        const { writeVmstateDump } = await import("./dump-vmstate.js");
        writeVmstateDump(flags.dumpVmstate);
        return;
      }
      if (flags.machine !== undefined) checkMachine(flags.machine);
      if (flags.smp !== undefined) checkSmp(flags.smp);
      if (flags.accel !== undefined) {
        // The core worker reads it when it builds the Machine (workers inherit the environment).
        const { parseAccel } = await import("../cpu/jit/accel.js");
        process.env.MINIVM_ACCEL = parseAccel(flags.accel);
      }
      if (flags.display !== undefined && flags.display.split(",")[0] !== "none") {
        throw new Error(`-display ${flags.display}: minivm has no display; use -display none`);
      }
      if (flags.daemonize === true && flags.nographic === true) throw new Error("-nographic cannot be used with -daemonize");
      if (flags.daemonize === true && (flags.serial === "stdio" || flags.serial === "mon:stdio")) {
        throw new Error(`-serial ${flags.serial}: cannot use stdio with -daemonize`);
      }
      const { daemonize, daemonReady, isDaemonChild } = await import("./daemon.js");
      const daemonChild = flags.daemonize === true && isDaemonChild();
      if (flags.daemonize === true && !daemonChild) {
        setStatus(await daemonize());
        return;
      }
      const { runVm } = await import("./run.js");
      let guest: import("./linux-guest.js").GuestFiles | null = null;
      if (flags.guest !== undefined) {
        const { GUESTS, linuxGuestFiles } = await import("./linux-guest.js");
        if (!(GUESTS as readonly string[]).includes(flags.guest)) throw new Error(`--guest ${flags.guest}: minivm ships these guests: ${GUESTS.join(", ")}`);
        guest = await linuxGuestFiles();
        // The shipped disk (a private copy) unless the user names one.
        if (disk === undefined && flags.drive.length === 0 && flags.blockdev.length === 0) disk = guest.diskPath;
      }
      type RunOptions = Parameters<typeof runVm>[0];
      let drives = disk === undefined ? flags.drive : [`file=${disk.replace(/,/g, ",,")},if=virtio`, ...flags.drive];
      // Nothing to boot named at all: the teaching disk, behind a throw-away overlay so the
      // shipped image never changes.
      if (drives.length === 0 && flags.blockdev.length === 0 && flags.kernel === undefined && flags.bios === undefined) {
        drives = [`file=${packageFile(BUILTIN_DISK).replace(/,/g, ",,")},format=raw,if=virtio,snapshot=on`];
      }
      // -object first: chardevs and monitors name these objects wherever they were written.
      const objectOptions = flags.object.map(parseObjectOption);
      const objects = new ObjectRegistry();
      for (const o of objectOptions) objects.add(o);
      const monitors = monitorsFromFlags(flags, objects);
      const machine = await machineFromFlags(flags, guest);
      const serialSpec = parseSerial(flags.serial ?? (flags.daemonize === true ? "none" : "stdio"));
      let serial: RunOptions["serial"];
      if (typeof serialSpec === "object" && "chardev" in serialSpec) {
        const endpoint = chardevsFromFlags(flags).get(serialSpec.chardev);
        if (endpoint === undefined) throw new Error(`-serial chardev:${serialSpec.chardev}: chardev "${serialSpec.chardev}" not found`);
        if (endpoint.address.kind !== "tcp" || !endpoint.server) throw new Error(`-serial chardev:${serialSpec.chardev}: minivm's serial chardev must be a tcp server=on socket`);
        serial = { tcp: endpoint.address, tls: chardevTls(serialSpec.chardev, endpoint, objects) ?? null };
      } else serial = serialSpec;
      if (machine === null) {
        process.stderr.write("minivm: --bios none and no --kernel: nothing to run; the machine idles, QMP still answers\n");
      }
      setStatus(
        await runVm({
          drives,
          blockdevs: flags.blockdev.map(parseBlockdev),
          devices: flags.device.map(parseDevice),
          machine,
          serial,
          monitors,
          objects: objectOptions,
          startPaused: flags.paused === true,
          incoming: flags.incoming ?? null,
          noShutdown: !flags.shutdown,
          noReboot: !flags.reboot,
          gdb: flags.gdb ?? (flags.s === true ? "tcp::1234" : undefined),
          pidfile: flags.pidfile ?? null,
          onReady: daemonChild ? daemonReady : undefined,
          name: flags.name,
          announce: true,
          traceFile: flags.trace,
          traceEvents: flags.traceEvents,
          dashboard: flags.dashboard === undefined ? undefined : parseDashboardAddress(flags.dashboard),
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
    .command("demo")
    .description("narrated scenarios for a class: oob, histogram, precopy, postcopy, recovery (no name: list them)")
    .argument("[name]", "the demo to run")
    .option("--non-interactive", "run straight through without waiting for Enter (CI)")
    .option("--dashboard", "also start the dashboard on the first VM and print its URL")
    .action(async (name: string | undefined, flags: { nonInteractive?: boolean; dashboard?: boolean }) => {
      const { demoMain } = await import("../demo/main.js");
      const out = (text: string): void => void process.stdout.write(text);
      const cli = process.argv[1] ?? packageFile("bin/minivm.js");
      const options = { nonInteractive: flags.nonInteractive === true, dashboard: flags.dashboard === true, node: process.execPath, cli, disk: packageFile(BUILTIN_DISK), out };
      setStatus(await demoMain(name, options));
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

  program
    .command("img")
    .description("qemu-img-like image tool: create, info, check, convert, compare, map, bench")
    .allowUnknownOption()
    .helpOption(false)
    .argument("[args...]")
    .action(async (args: string[]) => {
      if (args[0] === "create" && args.includes("--bootable")) {
        const { createBootable } = await import("./bootable.js");
        setStatus(await createBootable(args.slice(1)));
        return;
      }
      const { imgMain } = await import("./img.js");
      setStatus(await imgMain(args));
    });

  return program;
}
