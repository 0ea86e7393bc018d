// The teaching guest writes to its disk; QMP sees every request in query-blockstats, binned
// by the latency histogram set before the guest ran.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QmpClient } from "../../src/qmp/client.js";
import { startVm, type VmProcess } from "../helpers/vm.js";

let vm: VmProcess;
let c: QmpClient;

async function serialUntil(pattern: RegExp, from = 0): Promise<number> {
  await expect.poll(() => pattern.test(vm.stdout().slice(from)), { timeout: 60_000, interval: 50 }).toBe(true);
  return vm.stdout().length;
}

describe("guest disk I/O seen over QMP", () => {
  beforeAll(async () => {
    vm = await startVm(); // -S, the built-in teaching disk
    c = await vm.connect();
  });
  afterAll(async () => {
    c?.close();
    await vm?.kill();
  });

  it("counts the guest's writes in query-blockstats and bins them in the histogram set before", async () => {
    const [drive] = await c.execute("query-block");
    expect(drive?.qdev).toBe("/machine/peripheral-anon/device[0]");
    await c.execute("block-latency-histogram-set", { id: drive?.qdev as string, boundaries: [10_000, 100_000, 1_000_000, 10_000_000] });
    await c.execute("cont");
    let at = await serialUntil(/minivm\$ $/);
    const before = (await c.execute("query-blockstats"))[0]?.stats;
    vm.proc.stdin?.write("disk write 1\r");
    at = await serialUntil(/minivm\$ $/, at);
    vm.proc.stdin?.write("disk verify 1\r");
    await serialUntil(/minivm\$ $/, at);
    expect(vm.stdout()).toMatch(/disk verify: OK 1 MiB pattern=0x5a5a5a5a/);
    const stats = (await c.execute("query-blockstats"))[0]?.stats;
    expect(stats).toBeDefined();
    if (stats === undefined || before === undefined) return;
    expect(Number(stats.wr_bytes) - Number(before.wr_bytes)).toBeGreaterThanOrEqual(1 << 20);
    expect(Number(stats.wr_operations)).toBeGreaterThan(0);
    const wr = stats.wr_latency_histogram;
    expect(wr?.boundaries.map(Number)).toEqual([10_000, 100_000, 1_000_000, 10_000_000]);
    // Every write lands in exactly one bin.
    expect(wr?.bins.reduce((a, b) => Number(a) + Number(b), 0)).toBe(Number(stats.wr_operations));
    const rd = stats.rd_latency_histogram;
    expect(rd?.bins.reduce((a, b) => Number(a) + Number(b), 0)).toBe(Number(stats.rd_operations));
  });
});
