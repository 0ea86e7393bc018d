// The core thread: the machine (vCPU + devices) and the main loop, under the BQL. In-band
// QMP commands arrive from the monitor thread over comlink and run here one at a time, in
// arrival order, with the BQL held; events go back on the same port so they keep their order
// relative to command replies.

import { readlinkSync } from "node:fs";
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { createEventEmitters } from "../qapi/generated/events.js";
import { eventTimestamp } from "../qmp/dispatch.js";
import { QmpError } from "../qmp/errors.js";
import { exposeOn } from "./channel.js";
import { createCommandTable, type CommandTable } from "./handlers.js";
import { CoreLoop } from "./loop.js";
import { RunStateMachine } from "./runstate.js";
import { CONTROL, Request } from "./shared.js";
import { GdbServer } from "../gdb/server.js";
import { createHmpState } from "../hmp/hmp.js";
import { BlockLayer } from "../block/blockdev.js";
import { blockHandlers } from "../block/qmp-block.js";
import { plugVirtioDrives } from "./virtio-plug.js";
import { pumpRing } from "./byte-ring.js";
import { bqlHandle, checkRegions, controlView, serialInRing, serialOutRing } from "./regions.js";
import { installTracer } from "../trace/tracer.js";
import { Machine } from "./machine.js";
import { MigrationState } from "../migration/state.js";
import { StubMigrationEngine, type MigrationEngine } from "../migration/engine.js";
import { PrecopyEngine } from "../migration/migration.js";
import { startIncoming } from "../migration/qmp-migration.js";
import type { CoreApi, CoreToMonitorMessage, CoreWorkerData, ExecResult } from "./protocol.js";
import { ObjectRegistry } from "../crypto/objects.js";

const data = workerData as CoreWorkerData;
const regions = checkRegions(data.regions);
installTracer(regions.trace, "core");
const control = controlView(regions);
const monitorPort: MessagePort = data.monitorPort;

const mainBql = bqlHandle(regions, "main-loop");
const vcpuBql = bqlHandle(regions, "vcpu0");

function post(msg: CoreToMonitorMessage): void {
  monitorPort.postMessage(msg);
}

const events = createEventEmitters((event, eventData) => {
  post({ kind: "event", event, data: eventData, timestamp: eventTimestamp() });
});

// Guest output goes into the shared serial ring at once; the main thread is woken once per
// turn of the event loop (a wake-up per byte would cost more than the guest's whole slice).
// A full ring makes the vCPU wait for the main thread to read, so no byte is lost.
const serialOutput = serialOutRing(regions);
let serialWakePending = false;
function serialOut(bytes: Uint8Array): void {
  serialOutput.writeAll(bytes);
  if (!serialWakePending) {
    serialWakePending = true;
    setImmediate(flushSerial);
  }
}
function flushSerial(): void {
  serialWakePending = false;
  serialOutput.notifyReader();
}

// -object: the main thread already loaded these once, so a failure here is a changed file.
// The monitor thread checks TLS clients against its own copy of the authz objects.
const objects = new ObjectRegistry(() => post({ kind: "authz", definitions: objects.authzDefinitions() }));
try {
  for (const o of data.objects ?? []) objects.add(o);
} catch (e) {
  parentPort?.postMessage({ kind: "fatal", message: e instanceof Error ? e.message : String(e) });
  throw e;
}

let blockLayer: BlockLayer;
let virtio: ReturnType<typeof plugVirtioDrives>["virtio"];
try {
  // A migration destination opens its images without write access until the guest is its own.
  blockLayer = await BlockLayer.open(data.drives, data.blockdevs, data.devices, { inactive: data.incoming !== null });
  try {
    const plugged = plugVirtioDrives(blockLayer.plugs);
    blockLayer.attachDevices(plugged.attachments);
    virtio = plugged.virtio;
  } catch (e) {
    await blockLayer.close();
    throw e;
  }
} catch (e) {
  parentPort?.postMessage({ kind: "fatal", message: e instanceof Error ? e.message : String(e) });
  throw e;
}

// Set once the loop exists; a line may rise while the Machine is still being built.
let wakeForInterrupt: () => void = () => undefined;

const machine =
  data.machine === null
    ? null
    : new Machine({
        virtio,
        // Outside a slice (an I/O completion, say) a rising line must wake an idle loop.
        onInterrupt: () => wakeForInterrupt(),
        kernel: data.machine.kernel ?? undefined,
        bios: data.machine.bios,
        append: data.machine.append,
        initrd: data.machine.initrd ?? undefined,
        regions,
        serialOut,
        now: () => performance.now() * 1e6,
        rvc: data.machine.rvc ?? true,
      });

// QEMU's -incoming puts the VM in 'inmigrate' whatever -S says; -S only clears autostart.
const runState = new RunStateMachine(control, data.incoming !== null ? "inmigrate" : data.startPaused ? "prelaunch" : "running");
const migration = new MigrationState({ events, incoming: data.incoming, autostart: !data.startPaused, control });

// Set once the GDB stub listens (-gdb, -s); it hears of debug stops and other VM stops.
let gdb: GdbServer | null = null;

const loop = new CoreLoop({
  control,
  runState,
  vcpuBql,
  mainBql,
  engine: machine,
  events: {
    ...events,
    STOP: () => {
      events.STOP();
      if (!runState.is("debug")) gdb?.vmStopped();
    },
  },
  onDebugStop: (watch) => gdb?.debugStop(watch),
  noShutdown: data.noShutdown,
  noReboot: data.noReboot === true,
  onExit: async (status) => {
    flushSerial();
    gdb?.exited(status);
    // Every acknowledged write reaches the disk before the process ends.
    await blockLayer.close();
    post({ kind: "exit", status });
    parentPort?.postMessage({ kind: "exit", status });
  },
});

// Without a machine there is nothing to migrate: the stub refuses every outgoing migration.
const migrationEngine: MigrationEngine =
  machine === null
    ? new StubMigrationEngine()
    : new PrecopyEngine({
        regions,
        machine,
        runState,
        loop,
        bql: mainBql,
        block: {
          drain: () => machine.drainIo(),
          inactivate: () => blockLayer.inactivateAll(),
          activate: () => blockLayer.activateAll(),
        },
        warn: (message) => parentPort?.postMessage({ kind: "warning", message }),
        attachMonitorLink: (side, port) => monitorPort.postMessage({ kind: "migration-link", side, port } satisfies CoreToMonitorMessage, [port]),
        objects,
      });

/** Linux names the calling thread in /proc/thread-self; QEMU reports vCPU threads by tid. */
function hostThreadId(): number {
  try {
    return Number(readlinkSync("/proc/thread-self").split("/").pop());
  } catch {
    return process.pid;
  }
}

wakeForInterrupt = () => {
  // Inside a slice the vCPU sees the line itself; outside it, the loop may be asleep.
  if (!vcpuBql.held()) loop.wake();
};

const chardevIds = data.chardevIds ?? [];
const commands: CommandTable = createCommandTable(blockHandlers(blockLayer), {
  chardevs: {
    ids: () => [...chardevIds],
    yank: (id) => {
      if (!chardevIds.includes(id)) return false;
      post({ kind: "yank-chardev", id });
      return true;
    },
  },
  control,
  runState,
  loop,
  bql: mainBql,
  name: data.name,
  machine,
  coreThreadId: hostThreadId(),
  hmpState: createHmpState(),
  migration,
  migrationEngine,
  block: { inactive: () => blockLayer.isInactive, activateAll: () => blockLayer.activateAll() },
  objects,
});

function errorResult(e: unknown): ExecResult {
  if (e instanceof QmpError) return { ok: false, error: e.toWire() };
  // A bug in minivm, not in the request: say so the way QEMU would for an internal error.
  const desc = e instanceof Error ? e.message : String(e);
  return { ok: false, error: { class: "GenericError", desc } };
}

async function runInband(name: string, args: Record<string, unknown>): Promise<ExecResult> {
  const command = commands.get(name);
  if (command === undefined) {
    return { ok: false, error: { class: "CommandNotFound", desc: `The command ${name} has not been found` } };
  }
  mainBql.lock();
  Atomics.store(control, CONTROL.INBAND_RUNNING, 1);
  let result: unknown;
  try {
    result = command.run(args);
    loop.processRequests();
  } catch (e) {
    return errorResult(e);
  } finally {
    Atomics.store(control, CONTROL.INBAND_RUNNING, 0);
    Atomics.add(control, CONTROL.INBAND_DISPATCHED, 1);
    mainBql.unlock();
  }
  // A handler that must wait (block I/O, say) returns a promise; like a QEMU coroutine
  // command it does not keep the BQL while it waits.
  try {
    return { ok: true, value: await result };
  } catch (e) {
    return errorResult(e);
  }
}

// The monitor may send several in-band commands ahead; they still run one at a time, the
// next starting only when the previous one, waits included, has finished (QEMU's
// dispatcher awaits each command, coroutine commands too).
let inbandTail: Promise<unknown> = Promise.resolve();

const api: CoreApi = {
  execute(name, args) {
    const run = inbandTail.then(() => runInband(name, args));
    inbandTail = run;
    return run;
  },
};

exposeOn(api, monitorPort);
// Console input arrives in the shared serial-in ring; the main thread notifies its write
// counter (and kicks the loop), which wakes this event loop as a message used to.
pumpRing(serialInRing(regions), (bytes) => {
  if (machine === null) return;
  mainBql.with(() => machine.serialInput(bytes));
  loop.wake();
});
// QEMU's qemu_start_incoming_migration() for -incoming URI runs before the main loop.
if (data.incoming !== null) {
  try {
    mainBql.with(() => startIncoming(migration, migrationEngine, data.incoming as string));
    const error = migrationEngine instanceof PrecopyEngine ? await migrationEngine.incomingListening() : null;
    if (error !== null) throw new Error(error);
  } catch (e) {
    parentPort?.postMessage({ kind: "fatal", message: e instanceof Error ? e.message : String(e) });
    throw e;
  }
}
if (data.gdb !== undefined && machine !== null) {
  try {
    gdb = await GdbServer.listen(data.gdb, {
      machine,
      withLock: (f) => mainBql.with(f),
      isRunning: () => runState.running,
      resume: () => loop.vmStart(),
      pause: () => loop.vmStop("paused"),
      hmp: async (command) => {
        const r = await api.execute("human-monitor-command", { "command-line": command });
        return r.ok ? String(r.value) : `Error: ${r.error.desc}\n`;
      },
      kill: () => loop.request(Request.Shutdown, "host-qmp-quit"),
    });
  } catch (e) {
    parentPort?.postMessage({ kind: "fatal", message: e instanceof Error ? e.message : String(e) });
    throw e;
  }
}
loop.start();
parentPort?.postMessage({ kind: "ready" });
