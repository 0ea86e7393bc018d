import { describe, expect, it } from "vitest";
import { ObjectRegistry } from "../../src/crypto/objects.js";
import { objectHandlers } from "../../src/crypto/qmp-objects.js";
import { Bql, createBqlBuffer } from "../../src/core/bql.js";
import {
  composeCommandTable,
  createCommandTable,
  createCoreHandlers,
  type CommandPart,
  type CommandTable,
  type CoreContext,
} from "../../src/core/handlers.js";
import { CoreLoop } from "../../src/core/loop.js";
import { OOB_HANDLERS, type OobContext } from "../../src/core/oob-commands.js";
import { RunStateMachine } from "../../src/core/runstate.js";
import { CONTROL, createControlBuffer } from "../../src/core/shared.js";
import { createHmpHandlers, createHmpState } from "../../src/hmp/hmp.js";
import { QMP_COMMANDS } from "../../src/qapi/generated/commands.js";
import { SESSION_COMMANDS } from "../../src/qmp/dispatch.js";
import { StubMigrationEngine } from "../../src/migration/engine.js";
import { migrationHandlers } from "../../src/migration/qmp-migration.js";
import { MigrationState } from "../../src/migration/state.js";

type BlockHandlers = Parameters<typeof createCommandTable>[0];

function notCalled(): never {
  throw new Error("not called in this test");
}

// Typed as the block layer's handlers, so the compiler keeps this list equal to theirs.
const block: BlockHandlers = {
  "query-block": notCalled,
  "query-blockstats": notCalled,
  "query-named-block-nodes": notCalled,
  block_resize: notCalled,
  "block-latency-histogram-set": notCalled,
  "blockdev-add": notCalled,
  "blockdev-del": notCalled,
};

function coreContext(): CoreContext {
  const control = new Int32Array(createControlBuffer());
  const bqlBuffer = createBqlBuffer();
  const runState = new RunStateMachine(control, "prelaunch");
  const loop = new CoreLoop({
    control,
    runState,
    vcpuBql: new Bql(bqlBuffer, "vcpu0"),
    mainBql: new Bql(bqlBuffer, "main-loop"),
    engine: null,
    events: { SHUTDOWN: () => undefined, RESET: () => undefined, POWERDOWN: () => undefined, STOP: () => undefined, RESUME: () => undefined },
    noShutdown: false,
    onExit: () => undefined,
  });
  return {
    control,
    runState,
    loop,
    bql: new Bql(bqlBuffer, "main-loop"),
    name: "t",
    machine: null,
    coreThreadId: 1,
    hmpState: createHmpState(),
    migration: new MigrationState({ events: { MIGRATION: () => undefined, MIGRATION_PASS: () => undefined } }),
    migrationEngine: new StubMigrationEngine(),
    block: { inactive: () => false, activateAll: () => Promise.resolve() },
    chardevs: { ids: () => ["compat_monitor0"], yank: (id) => id === "compat_monitor0" },
    objects: new ObjectRegistry(),
  };
}

const oobContext = (): OobContext => ({
  control: new Int32Array(createControlBuffer()),
  bql: new Bql(createBqlBuffer(), "x"),
  outOfBand: true,
  // No migration threads here: every status is "none", nothing to pause, recover or yank.
  migration: { status: () => "none", pause: () => false, recover: () => Promise.reject(new Error("no migration")), yankable: () => [], yank: () => false },
  chardevs: { ids: () => ["compat_monitor0"], yank: (id) => id === "compat_monitor0" },
});
const OOB_FUNCTIONS: ReadonlySet<unknown> = new Set(Object.values(OOB_HANDLERS));

describe("the command table", () => {
  const table: CommandTable = createCommandTable(block, coreContext());

  it("has exactly one handler for every command of the schema but those the session answers", () => {
    const session: readonly string[] = SESSION_COMMANDS;
    expect([...table.keys()].sort()).toEqual([...QMP_COMMANDS.keys()].filter((n) => !session.includes(n)).sort());
    for (const name of session) expect(QMP_COMMANDS.has(name)).toBe(true);
  });

  it("takes every allow-oob command's handler, and only those, from the lock-free OOB module", () => {
    for (const [name, entry] of table) {
      const allowOob = QMP_COMMANDS.get(name)?.allowOob;
      expect(entry.spec).toBe(QMP_COMMANDS.get(name));
      expect({ name, fromOobModule: OOB_FUNCTIONS.has(entry.handler), source: entry.source }).toEqual({
        name,
        fromOobModule: allowOob,
        source: allowOob ? "oob" : expect.not.stringMatching(/^oob$/),
      });
    }
    expect(Object.keys(OOB_HANDLERS).sort()).toEqual([...QMP_COMMANDS.values()].filter((s) => s.allowOob).map((s) => s.name).sort());
  });

  it("runs an allow-oob command in-band with the same function: x-oob-test lock=false posts the semaphore", () => {
    const ctx = coreContext();
    const t = createCommandTable(block, ctx);
    expect(t.get("x-oob-test")?.run({ lock: false })).toEqual({});
    expect(Atomics.load(ctx.control, CONTROL.OOB_TEST_SEM)).toBe(1);
    // In-band, lock=true takes the posted token instead of refusing as it does out of band.
    expect(t.get("x-oob-test")?.run({ lock: true })).toEqual({});
    expect(Atomics.load(ctx.control, CONTROL.OOB_TEST_SEM)).toBe(0);
  });

  it("answers HMP through the same table", async () => {
    expect(await table.get("human-monitor-command")?.run({ "command-line": "info status" })).toBe("VM status: paused (prelaunch)\r\n");
    expect(await table.get("human-monitor-command")?.run({ "command-line": "info bql" })).toMatch(/^BQL: free\r\nacquisitions: 0, contended: 0\r\n/);
  });
});

describe("composeCommandTable", () => {
  const ctx = coreContext();
  const realParts = (): CommandPart[] => [
    { source: "core", handlers: createCoreHandlers(ctx) },
    { source: "block", handlers: block },
    { source: "migration", handlers: migrationHandlers({ migration: ctx.migration, engine: ctx.migrationEngine, runState: ctx.runState }) },
    { source: "objects", handlers: objectHandlers(ctx.objects) },
    { source: "hmp", handlers: createHmpHandlers({ ...ctx, call: notCalled }) },
  ];

  it("accepts the real parts", () => {
    expect(composeCommandTable(oobContext(), realParts()).size).toBe(QMP_COMMANDS.size - SESSION_COMMANDS.length);
  });

  it("refuses a command defined twice", () => {
    expect(() => composeCommandTable(oobContext(), [...realParts(), { source: "hmp", handlers: { "query-status": notCalled } }])).toThrow(
      "query-status has two handlers, from core and from hmp",
    );
  });

  it("refuses an allow-oob command defined outside the OOB module", () => {
    expect(() => composeCommandTable(oobContext(), [...realParts(), { source: "core", handlers: { "x-query-bql": notCalled } }])).toThrow(
      "x-query-bql is allow-oob in the schema, so its handler belongs in oob-commands.ts, not in core",
    );
  });

  it("refuses a missing command, an unknown one and one the session answers", () => {
    const parts = realParts().filter((p) => p.source !== "hmp");
    expect(() => composeCommandTable(oobContext(), parts)).toThrow("no handler for human-monitor-command");
    expect(() => composeCommandTable(oobContext(), [...realParts(), { source: "core", handlers: { "no-such": notCalled } }])).toThrow(
      "core handler for no-such, a command the schema does not define",
    );
    expect(() => composeCommandTable(oobContext(), [...realParts(), { source: "core", handlers: { qmp_capabilities: notCalled } }])).toThrow(
      "core handler for qmp_capabilities, which the QMP session answers itself",
    );
  });
});

describe("the OOB handlers out of band", () => {
  it("refuse x-oob-test lock=true, which would stop the monitor thread", () => {
    expect(() => OOB_HANDLERS["x-oob-test"]({ lock: true }, oobContext())).toThrow(/run it in-band/);
  });
});

describe("the migration's out-of-band commands", () => {
  it("check the shared status words: QEMU 7.2's refusals when nothing is in postcopy", async () => {
    const ctx = oobContext();
    expect(() => OOB_HANDLERS["migrate-pause"]({}, ctx)).toThrow("migrate-pause is currently only supported during postcopy-active state");
    expect(() => OOB_HANDLERS["migrate-recover"]({ uri: "unix:/tmp/x" }, ctx)).toThrow("Migrate recover can only be run when postcopy is paused.");
  });

  it("pause whichever side is in postcopy-active, and recover only a paused destination", async () => {
    const paused: string[] = [];
    const status: Record<string, string> = { outgoing: "none", incoming: "postcopy-active" };
    const ctx: OobContext = {
      ...oobContext(),
      migration: {
        status: (side) => status[side] as never,
        pause: (side) => (paused.push(side), true),
        recover: async (uri) => void paused.push(`recover ${uri}`),
        yankable: () => ["incoming"],
        yank: (side) => (paused.push(`yank ${side}`), true),
      },
    };
    expect(OOB_HANDLERS["migrate-pause"]({}, ctx)).toEqual({});
    status.incoming = "postcopy-paused";
    expect(await OOB_HANDLERS["migrate-recover"]({ uri: "unix:/tmp/r" }, ctx)).toEqual({});
    expect(paused).toEqual(["incoming", "recover unix:/tmp/r"]);
    expect(OOB_HANDLERS["query-yank"]({}, ctx)).toEqual([{ type: "chardev", id: "compat_monitor0" }, { type: "migration" }]);
    expect(() => OOB_HANDLERS.yank({ instances: [{ type: "migration" }, { type: "chardev", id: "nope" }] }, ctx)).toThrow("Instance not found");
    // All or nothing: the unknown chardev stopped the migration's yank too.
    expect(paused).toEqual(["incoming", "recover unix:/tmp/r"]);
    expect(OOB_HANDLERS.yank({ instances: [{ type: "migration" }] }, ctx)).toEqual({});
    expect(paused.at(-1)).toBe("yank incoming");
  });
});
