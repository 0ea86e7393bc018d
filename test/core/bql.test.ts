import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { Bql, createBqlBuffer } from "../../src/core/bql.js";

// Worker threads cannot load TypeScript, so the contending threads use the built module
// (npm test builds before it runs vitest).
const BUILT_BQL = pathToFileURL(join(import.meta.dirname, "../../dist/src/core/bql.js")).href;

function contender(bql: SharedArrayBuffer, counter: SharedArrayBuffer, name: string, rounds: number): Promise<void> {
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(${JSON.stringify(BUILT_BQL)}).then(({ Bql }) => {
      const lock = new Bql(workerData.bql, workerData.name);
      const c = new Int32Array(workerData.counter);
      for (let i = 0; i < workerData.rounds; i++) {
        lock.lock();
        // A deliberately non-atomic read-modify-write: only the lock keeps it exact.
        const v = c[0];
        for (let spin = 0; spin < 200; spin++) c[1] = spin;
        c[0] = v + 1;
        lock.unlock();
      }
      parentPort.postMessage("done");
    });`;
  const w = new Worker(code, { eval: true, workerData: { bql, counter, name, rounds } });
  return new Promise((resolve, reject) => {
    w.on("message", () => resolve());
    w.on("error", reject);
  });
}

describe("the big lock", () => {
  it("keeps a non-atomic counter exact across threads and records the contention", async () => {
    const buf = createBqlBuffer();
    const counter = new SharedArrayBuffer(8);
    const rounds = 20_000;
    await Promise.all([contender(buf, counter, "vcpu0", rounds), contender(buf, counter, "migration", rounds)]);
    expect(new Int32Array(counter)[0]).toBe(2 * rounds);
    const snap = new Bql(buf, "observer").snapshot();
    expect(snap.holder).toBeNull();
    expect(snap.acquisitions).toBe(2 * rounds);
    const byName = new Map(snap.threads.map((t) => [t.thread, t]));
    expect(byName.get("vcpu0")?.acquisitions).toBe(rounds);
    expect(byName.get("migration")?.acquisitions).toBe(rounds);
    expect(snap.contended).toBe((byName.get("vcpu0")?.contended ?? 0) + (byName.get("migration")?.contended ?? 0));
  });

  it("counts an acquisition that had to wait as contended, with its waiting time", async () => {
    const buf = createBqlBuffer();
    const holder = new Bql(buf, "main-loop");
    holder.lock();
    const waiter = contender(buf, new SharedArrayBuffer(8), "vcpu0", 1);
    // The lock word becomes 2 ("held, with waiters") once the other thread sleeps on it.
    const state = new Int32Array(buf, 0, 1);
    while (Atomics.load(state, 0) !== 2) await new Promise((r) => setImmediate(r));
    holder.unlock();
    await waiter;
    const vcpu = holder.snapshot().threads.find((t) => t.thread === "vcpu0");
    expect(vcpu).toMatchObject({ acquisitions: 1, contended: 1 });
    expect(vcpu?.totalWaitNs).toBeGreaterThan(0);
  });

  it("reports the holder and refuses a recursive lock or an unlock by a non-holder", () => {
    const buf = createBqlBuffer();
    const a = new Bql(buf, "main-loop");
    const b = new Bql(buf, "vcpu0");
    a.lock();
    expect(a.held()).toBe(true);
    expect(b.held()).toBe(false);
    expect(b.snapshot().holder).toBe("main-loop");
    expect(() => a.lock()).toThrow(/recursive/);
    expect(() => b.unlock()).toThrow(/does not hold/);
    expect(b.tryLock()).toBe(false);
    a.unlock();
    expect(b.tryLock()).toBe(true);
    b.unlock();
    const snap = a.snapshot();
    expect(snap.holder).toBeNull();
    expect(snap.threads.map((t) => t.thread)).toEqual(["main-loop", "vcpu0"]);
    expect(snap.threads[0]?.longestHoldNs).toBeGreaterThanOrEqual(0);
  });

  it("gives a thread that registers the same name the same statistics slot", () => {
    const buf = createBqlBuffer();
    new Bql(buf, "main-loop").with(() => undefined);
    new Bql(buf, "main-loop").with(() => undefined);
    const snap = new Bql(buf, "main-loop").snapshot();
    expect(snap.threads).toHaveLength(1);
    expect(snap.threads[0]?.acquisitions).toBe(2);
  });
});
