import { describe, expect, it } from "vitest";
import { StubMigrationEngine } from "../../src/migration/engine.js";
import { migrationHandlers } from "../../src/migration/qmp-migration.js";
import { MigrationState } from "../../src/migration/state.js";
import type { RunState } from "../../src/qapi/generated/types.js";

function setup(runState: RunState = "running", engine = new StubMigrationEngine("hold")) {
  const events: Array<{ event: string; data: unknown }> = [];
  let clock = 1000;
  const m = new MigrationState({
    events: { MIGRATION: (data) => events.push({ event: "MIGRATION", data }), MIGRATION_PASS: (data) => events.push({ event: "MIGRATION_PASS", data }) },
    now: () => clock,
  });
  const rs = { state: runState };
  const h = migrationHandlers({ migration: m, engine, runState: rs });
  return { m, h, events, engine, rs, tick: (ms: number) => (clock += ms) };
}

describe("MigrationState", () => {
  it("sends MIGRATION and MIGRATION_PASS only while the events capability is on", () => {
    const { m, h, events } = setup();
    h.migrate({ uri: "tcp:127.0.0.1:4444" });
    m.transition("setup", "active");
    m.passStarted();
    expect(events).toEqual([]);
    h.migrate_cancel({});
    h["migrate-set-capabilities"]({ capabilities: [{ capability: "events", state: true }] });
    h.migrate({ uri: "tcp:127.0.0.1:4444" });
    m.transition("setup", "active");
    m.passStarted();
    expect(events).toEqual([
      { event: "MIGRATION", data: { status: "setup" } },
      { event: "MIGRATION", data: { status: "active" } },
      { event: "MIGRATION_PASS", data: { pass: 1 } },
    ]);
  });

  it("reports QEMU 7.2's members for each status", () => {
    const { m, h, tick } = setup();
    expect(h["query-migrate"]({})).toEqual({});
    h.migrate({ uri: "unix:/tmp/x" });
    expect(h["query-migrate"]({})).toEqual({ status: "setup" });
    m.setupTime = 3;
    m.expectedDowntime = 42;
    m.ram.remaining = 4096;
    m.ram.normal = 2;
    tick(250);
    m.transition("setup", "active");
    const active = m.queryMigrate();
    expect(Object.keys(active).sort()).toEqual(["expected-downtime", "ram", "setup-time", "status", "total-time"]);
    expect(active).toMatchObject({ status: "active", "total-time": 250, "expected-downtime": 42, "setup-time": 3 });
    expect(active.ram).toMatchObject({ remaining: 4096, normal: 2, "normal-bytes": 8192, "page-size": 4096, skipped: 0 });
    m.cpuThrottlePercentage = 20;
    expect(m.queryMigrate()["cpu-throttle-percentage"]).toBe(20);
    m.totalTime = 300;
    m.downtime = 12;
    m.transition("active", "completed");
    const done = m.queryMigrate();
    expect(Object.keys(done).sort()).toEqual(["cpu-throttle-percentage", "downtime", "ram", "setup-time", "status", "total-time"]);
    expect(done).toMatchObject({ status: "completed", "total-time": 300, downtime: 12 });
    expect(done.ram?.remaining).toBe(0);
  });

  it("fails with error-desc, refuses a second migration while one runs, and cancels through cancelling", () => {
    const { m, h, engine } = setup();
    h.migrate({ uri: "tcp:127.0.0.1:1" });
    expect(() => h.migrate({ uri: "tcp:127.0.0.1:1" })).toThrow("There's a migration process in progress");
    expect(() => h["migrate-set-capabilities"]({ capabilities: [{ capability: "events", state: true }] })).toThrow(
      "There's a migration process in progress",
    );
    h.migrate_cancel({});
    expect(m.status).toBe("cancelled");
    expect(engine.calls.map((c) => c.method)).toEqual(["startOutgoing", "cancel"]);
    h.migrate({ uri: "tcp:127.0.0.1:1" });
    m.fail("Failed to connect to '127.0.0.1:1': Connection refused");
    expect(h["query-migrate"]({})).toEqual({ status: "failed", "error-desc": "Failed to connect to '127.0.0.1:1': Connection refused" });
  });

  it("refuses an illegal status transition as a bug, and a stale one quietly", () => {
    const { m } = setup();
    expect(() => m.transition("none", "completed")).toThrow("invalid migration status transition: 'none' -> 'completed'");
    expect(m.transition("active", "completed")).toBe(false);
  });

  it("waits in pre-switchover until migrate-continue names that state", () => {
    const { m, h, engine } = setup();
    h.migrate({ uri: "exec:cat > /dev/null" });
    m.transition("setup", "active");
    m.transition("active", "pre-switchover");
    expect(() => h["migrate-continue"]({ state: "active" })).toThrow("Migration not in expected state: pre-switchover");
    h["migrate-continue"]({ state: "pre-switchover" });
    expect(m.status).toBe("device");
    expect(engine.calls.at(-1)?.method).toBe("continueFromPreSwitchover");
  });

  it("refuses to migrate out of a destination or a migrated source, in QEMU's words", () => {
    expect(() => setup("inmigrate").h.migrate({ uri: "tcp:127.0.0.1:1" })).toThrow("Guest is waiting for an incoming migration");
    expect(() => setup("postmigrate").h.migrate({ uri: "tcp:127.0.0.1:1" })).toThrow(
      "Can't migrate the vm that was paused due to previous migration",
    );
  });

  it("refuses a migration with a capability whose stream minivm cannot write, and records why", () => {
    const { m, h } = setup();
    h["migrate-set-capabilities"]({ capabilities: [{ capability: "xbzrle", state: true }] });
    expect(() => h.migrate({ uri: "tcp:127.0.0.1:1" })).toThrow("minivm cannot migrate with the 'xbzrle' capability on");
    expect(m.queryMigrate()).toEqual({ status: "failed", "error-desc": "minivm cannot migrate with the 'xbzrle' capability on" });
  });

  it("checks new parameters whole and applies none of them when one is wrong", () => {
    const { m } = setup();
    expect(() => m.setParameters({ "downtime-limit": 100, "cpu-throttle-initial": 0 })).toThrow(
      "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99",
    );
    expect(m.parameters["downtime-limit"]).toBe(300);
    m.setParameters({ "downtime-limit": 100, "tls-creds": null });
    expect(m.parameters["downtime-limit"]).toBe(100);
    expect(m.parameters["tls-creds"]).toBe("");
  });

  it("starts an incoming migration once, only in inmigrate, announcing setup", () => {
    const { m, h, events, engine } = setup("inmigrate");
    expect(() => h["migrate-incoming"]({ uri: "foo:bar" })).toThrow("unknown migration protocol: foo:bar");
    h["migrate-incoming"]({ uri: "tcp:127.0.0.1:0" });
    expect(m.incoming.started).toBe(true);
    expect(() => h["migrate-incoming"]({ uri: "tcp:127.0.0.1:0" })).toThrow("The incoming migration has already been started");
    expect(events.filter((e) => e.event === "MIGRATION")).toHaveLength(2);
    expect(engine.calls).toEqual([{ method: "startIncoming", uri: "tcp:127.0.0.1:0" }]);
    expect(() => setup("running").h["migrate-incoming"]({ uri: "tcp:127.0.0.1:0" })).toThrow(
      "'-incoming' was not specified on the command line",
    );
  });
});
