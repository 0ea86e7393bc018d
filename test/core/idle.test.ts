// An idle guest (WFI between timer ticks) costs the host one core-thread wake-up per tick, its
// timer interrupts keep pace with the wall clock, and the monitor still answers at once
// (issue 12 §4). CPU time itself is measured in bench/boot, never here.

import { afterAll, describe, expect, it } from "vitest";
import { CoreLoop } from "../../src/core/loop.js";
import { Machine } from "../../src/core/machine.js";
import { bqlHandle, controlView, createSharedRegions } from "../../src/core/regions.js";
import { RunStateMachine } from "../../src/core/runstate.js";
import type { Accel } from "../../src/cpu/jit/accel.js";
import { writeElf } from "../cpu/elf-writer.js";
import { addi, csrrs, csrrw, enc, li, sw } from "../cpu/rv-asm.js";
import { startVm, type VmProcess } from "../helpers/vm.js";

const S0 = 8;
const S1 = 9;
const S2 = 18;
const S3 = 19;
const S4 = 20;
const T0 = 5;
const T1 = 6;
const T2 = 7;
const WFI = 0x10500073;
const MRET = 0x30200073;
const MTVEC = 0x305;
const MIE = 0x304;
const MSTATUS = 0x300;
const lw = (rd: number, rs1: number, imm: number) => enc.i(0x03, 2, rd, rs1, imm);
const add = (rd: number, rs1: number, rs2: number) => enc.r(0x33, 0, 0, rd, rs1, rs2);

/** CLINT mtime (10 MHz) ticks between guest timer interrupts: 100 Hz, as the teaching guest. */
const PERIOD = 100_000;
const TICK_MS = 10;

/**
 * An M-mode guest with a 100 Hz tick on absolute deadlines (mtimecmp += period, as the
 * teaching guest's handler does), counting ticks in s1 and sleeping in WFI in between.
 */
function tickingGuest(busyAfterWake = false): Uint8Array {
  const code: number[] = [
    ...li(S3, PERIOD),
    ...li(T1, 0x0200bff8), // mtime
    lw(S2, T1, 0),
    add(S2, S2, S3),
    ...li(T2, 0x02004000), // mtimecmp (high word stays 0: mtime starts at 0 on reset)
    sw(T2, 0, 4),
    sw(T2, S2, 0),
  ];
  const handlerAt = code.length + (busyAfterWake ? 10 : 9);
  code.push(enc.u(0x17, T0, 0), addi(T0, T0, (handlerAt - code.length) * 4));
  code.push(csrrw(0, MTVEC, T0), addi(T0, 0, 0x80), csrrs(0, MIE, T0), addi(T0, 0, 0x8), csrrs(0, MSTATUS, T0));
  // Busy: one WFI, then count in s4 forever, the timer interrupting now and then.
  code.push(...(busyAfterWake ? [WFI, addi(S4, S4, 1), enc.j(0, -4)] : [WFI, enc.j(0, -4)]));
  expect(code.length).toBe(handlerAt);
  code.push(addi(S1, S1, 1), add(S2, S2, S3), sw(T2, S2, 0), MRET);
  const bytes = new Uint8Array(code.length * 4);
  const dv = new DataView(bytes.buffer);
  code.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return writeElf([{ addr: 0x80000000, bytes }], 0x80000000);
}

const noop = (): void => undefined;

/** `wfi; j .-4` with every interrupt masked: a hart that sleeps with no deadline at all. */
function sleeper(): Uint8Array {
  const bytes = new Uint8Array(8);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, WFI, true);
  dv.setUint32(4, enc.j(0, -4), true);
  return writeElf([{ addr: 0x80000000, bytes }], 0x80000000);
}

function idleMachine(kernel: Uint8Array, accel: Accel = "jit"): { m: Machine; loop: CoreLoop; stop: () => void } {
  const regions = createSharedRegions({ ramSize: 16 << 20 });
  const control = controlView(regions);
  const vcpuBql = bqlHandle(regions, "vcpu0");
  let loop: CoreLoop | null = null;
  const m = new Machine({
    regions,
    bios: null,
    kernel,
    accel,
    serialOut: noop,
    onInterrupt: () => {
      if (!vcpuBql.held()) loop?.wake();
    },
  });
  let stopped = false;
  loop = new CoreLoop({
    control,
    runState: new RunStateMachine(control, "running"),
    vcpuBql,
    mainBql: bqlHandle(regions, "main-loop"),
    engine: m,
    events: { SHUTDOWN: noop, RESET: noop, POWERDOWN: noop, STOP: noop, RESUME: noop },
    noShutdown: false,
    onExit: () => {
      stopped = true;
    },
  });
  loop.start();
  const l = loop;
  return {
    m,
    loop: l,
    stop: () => {
      if (!stopped) l.vmStop("paused");
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("an idle guest on the core loop", () => {
  it("takes its 100 Hz timer interrupts in step with the wall clock, waking the loop once per tick", async () => {
    const { m, loop, stop } = idleMachine(tickingGuest());
    try {
      await sleep(200);
      const ticks0 = m.cpu.x[S1];
      const wakes0 = loop.idleWakeups;
      const t0 = performance.now();
      await sleep(1500);
      const ticks = m.cpu.x[S1] - ticks0;
      const wakes = loop.idleWakeups - wakes0;
      const expected = (performance.now() - t0) / TICK_MS;
      // The deadlines are absolute, so a late wake-up delays a tick but never loses one.
      expect(Math.abs(ticks - expected)).toBeLessThanOrEqual(5);
      // A timer that fired before the deadline used to cost a second wake-up for ~1 tick in 3.
      expect(wakes).toBeGreaterThanOrEqual(ticks - 2);
      expect(wakes).toBeLessThanOrEqual(ticks * 1.15 + 3);
    } finally {
      stop();
    }
  });

  it("ends an idle wait with no deadline when kicked (an interrupt, a command, console input)", async () => {
    const { m, loop, stop } = idleMachine(sleeper());
    try {
      for (let i = 0; i < 200 && !m.cpu.wfi; i++) await sleep(5);
      await sleep(20);
      const wakes = loop.idleWakeups;
      const slices = loop.slices;
      // Nothing is due: without the kick the loop would sleep forever.
      loop.wake();
      for (let i = 0; i < 200 && loop.idleWakeups === wakes; i++) await sleep(5);
      expect(loop.idleWakeups).toBe(wakes + 1);
      expect(loop.slices).toBe(slices + 1);
    } finally {
      stop();
    }
  });
});

describe("the engine after a WFI wake-up under the block compiler", () => {
  it("interprets an idle guest's short timer handler and compiles code that keeps running", async () => {
    const idle = idleMachine(tickingGuest());
    const busy = idleMachine(tickingGuest(true));
    try {
      await sleep(300);
      const jit = idle.m.engine.jit;
      expect(jit).not.toBeNull();
      const before = jit?.snapshotStats().jitInsns;
      const ticks = idle.m.cpu.x[S1];
      await sleep(300);
      expect(idle.m.cpu.x[S1]).toBeGreaterThan(ticks + 10);
      // Hot by the compiler's measure (dozens of entries), yet never worth compiling.
      expect(jit?.snapshotStats().jitInsns).toBe(before);
      expect(busy.m.cpu.x[S4]).toBeGreaterThan(100_000);
      expect(busy.m.engine.jit?.snapshotStats().jitInsns).toBeGreaterThan(100_000);
    } finally {
      idle.stop();
      busy.stop();
    }
  });
});

describe("the teaching guest idle at its prompt in a real minivm process", () => {
  let vm: VmProcess | null = null;
  afterAll(async () => {
    await vm?.kill();
  });

  async function uptime(v: VmProcess): Promise<{ ms: number; ticks: number }> {
    const from = v.stdout().length;
    v.proc.stdin?.write("uptime\r");
    for (let i = 0; i < 1000; i++) {
      const m = /uptime: (\d+)\.(\d{3}) s ticks=(\d+)/.exec(v.stdout().slice(from));
      if (m !== null) return { ms: Number(m[1]) * 1000 + Number(m[2]), ticks: Number(m[3]) };
      await sleep(10);
    }
    throw new Error(`no uptime line: ${v.stdout().slice(from)}`);
  }

  it("counts one tick per 10 ms of its own clock and answers QMP while it sleeps", async () => {
    vm = await startVm([], { paused: false });
    for (let i = 0; i < 3000 && !vm.stdout().includes("minivm$ "); i++) await sleep(10);
    expect(vm.stdout()).toContain("minivm$ ");
    const a = await uptime(vm);
    const wall0 = performance.now();
    const qmp = await vm.connect();
    try {
      // In-band, so it runs on the core thread: the sleeping loop must wake for it.
      expect(await qmp.execute("query-status")).toMatchObject({ running: true, status: "running" });
    } finally {
      qmp.close();
    }
    await sleep(1500);
    const b = await uptime(vm);
    const guestMs = b.ms - a.ms;
    // The guest's clock runs with the host's while the VM runs (the command itself takes a
    // few ms of guest time, hence the slack on both sides).
    expect(Math.abs(guestMs - (performance.now() - wall0))).toBeLessThan(500);
    expect(Math.abs(b.ticks - a.ticks - guestMs / TICK_MS)).toBeLessThanOrEqual(3);
  });
});
