import { describe, expect, it } from "vitest";
import { RunStateMachine, readRunState } from "../../src/core/runstate.js";
import { CONTROL_WORDS } from "../../src/core/shared.js";

function machine(initial: "prelaunch" | "running" | "paused" | "inmigrate"): { rs: RunStateMachine; control: Int32Array } {
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  return { rs: new RunStateMachine(control, initial), control };
}

describe("run states", () => {
  it("starts in prelaunch for -S and is visible to any thread through the shared word", () => {
    const { rs, control } = machine("prelaunch");
    expect(rs.state).toBe("prelaunch");
    expect(rs.running).toBe(false);
    rs.set("running");
    expect(readRunState(control)).toBe("running");
  });

  it("allows QEMU's transitions and refuses the others", () => {
    const { rs } = machine("running");
    rs.set("paused");
    rs.set("running");
    rs.set("shutdown");
    expect(rs.needsReset).toBe(true);
    expect(() => rs.set("running")).toThrow("invalid runstate transition: 'shutdown' -> 'running'");
    rs.set("prelaunch");
    expect(() => rs.set("postmigrate")).toThrow(/prelaunch' -> 'postmigrate'/);
  });

  it("treats setting the current state as a no-op, like runstate_set()", () => {
    const { rs } = machine("paused");
    rs.set("paused");
    expect(rs.state).toBe("paused");
  });

  it("lets an incoming migration finish into running, paused or postmigrate only via legal paths", () => {
    const { rs } = machine("inmigrate");
    rs.set("postmigrate");
    rs.set("running");
    rs.set("finish-migrate");
    rs.set("postmigrate");
    expect(rs.state).toBe("postmigrate");
  });
});
