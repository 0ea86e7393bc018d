import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BlockBackend, parseDrive } from "../../src/block/backend.js";
import { createImage } from "../../src/block/create.js";
import { hmpInfoBlock, hmpInfoBlockstats } from "../../src/block/hmp-block.js";
import { openImage } from "../../src/block/image.js";
import { IoPool } from "../../src/block/io-pool.js";
import { BlockGraph } from "../../src/block/node.js";
import { blockInfo, blockstatsInfo, namedBlockNodes } from "../../src/block/qapi-block.js";
import { buildDist, cleanupDist, interop, qemuImg, tempDir } from "./helpers.js";

const pool = new IoPool();
const t = tempDir();
afterAll(async () => {
  await pool.close();
  t.cleanup();
  cleanupDist();
});

describe("--drive parsing", () => {
  it("reads QEMU's key=value syntax with escaped commas", () => {
    expect(parseDrive("file=a,,b.qcow2,format=qcow2,if=virtio,id=d0,readonly=on,snapshot=off")).toEqual({
      file: "a,b.qcow2",
      format: "qcow2",
      if: "virtio",
      id: "d0",
      readonly: true,
      snapshot: false,
      nodeName: undefined,
    });
    expect(parseDrive("file=x.img", 1).id).toBe("virtio1");
  });
  it("rejects unknown keys, formats and a missing file in QEMU's words", () => {
    expect(() => parseDrive("file=x,bogus=1")).toThrow("Invalid parameter 'bogus'");
    expect(() => parseDrive("file=x,format=vmdk")).toThrow("'vmdk' invalid format");
    expect(() => parseDrive("format=raw")).toThrow("Parameter 'file' is missing");
    expect(() => parseDrive("file=x,readonly=maybe")).toThrow("expects 'on' or 'off'");
  });
});

describe("BlockBackend", () => {
  it("snapshot=on sends writes to a temporary overlay and leaves the image untouched", async () => {
    const f = t.path("snap.raw");
    await createImage({ filename: f, format: "raw", size: 1 << 20, pool });
    const b = await BlockBackend.open({ file: f, format: "raw", id: "d0", snapshot: true, pool });
    await b.write(0, new Uint8Array(4096).fill(9));
    expect((await b.read(0, 1))[0]).toBe(9);
    expect(readFileSync(f)[0]).toBe(0);
    const overlay = b.drv.filename;
    await b.close();
    expect(existsSync(dirname(overlay))).toBe(false);
  });

  it("opens with backing: null ignoring the header's backing file", async () => {
    const base = t.path("nb-base.raw");
    await createImage({ filename: base, format: "raw", size: 1 << 20, pool });
    const top = t.path("nb-top.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, backingFile: "nb-base.raw", backingFormat: "raw" });
    const b = await BlockBackend.open({ file: top, format: "qcow2", id: "d1", backing: null, pool });
    expect(b.drv.backing).toBeNull();
    await b.close();
  });

  it.runIf(interop)("grows a qcow2 image past its L1 table and qemu-img agrees", async () => {
    const f = t.path("grow.qcow2");
    await createImage({ filename: f, format: "qcow2", pool, size: 1 << 20, clusterSize: 512 });
    const b = await BlockBackend.open({ file: f, id: "g", pool });
    await b.write(1000, new Uint8Array(3000).fill(3));
    await b.resize(64 << 20);
    await b.write((64 << 20) - 5000, new Uint8Array(5000).fill(4));
    expect((await b.read(1000, 1))[0]).toBe(3);
    await b.close();
    expect(JSON.parse(qemuImg(["info", "--output=json", f]).stdout)["virtual-size"]).toBe(64 << 20);
    expect(qemuImg(["check", f]).status).toBe(0);
    const again = await BlockBackend.open({ file: f, id: "g", pool });
    await expect(again.resize(1024)).rejects.toThrow("shrinking");
    await again.close();
  });

  it("reports query-block and query-blockstats objects with the chain, and HMP text", async () => {
    const base = t.path("qb-base.raw");
    await createImage({ filename: base, format: "raw", size: 1 << 20, pool });
    const top = t.path("qb-top.qcow2");
    await createImage({ filename: top, format: "qcow2", pool, backingFile: "qb-base.raw", backingFormat: "raw" });
    const graph = new BlockGraph();
    const b = await BlockBackend.open({ file: top, id: "drive0", pool, graph, qdev: "/machine/peripheral/virtio-disk0/virtio-backend" });
    await b.write(0, new Uint8Array(512));
    const info = await blockInfo(b);
    expect(info.device).toBe("drive0");
    expect(info.inserted?.backing_file_depth).toBe(1);
    expect(info.inserted?.image["backing-image"]?.format).toBe("raw");
    const st = blockstatsInfo(b);
    expect(st.parent?.["driver-specific"]?.driver).toBe("file");
    expect(st.backing).toBeDefined();
    expect(st.stats.wr_operations).toBe(1);
    expect(hmpInfoBlockstats([st])).toMatch(/^drive0: rd_bytes=0 wr_bytes=512 rd_operations=0 wr_operations=1 flush_operations=0 wr_total_time_ns=\d+ rd_total_time_ns=0 flush_total_time_ns=0 rd_merged=0 wr_merged=0 idle_time_ns=\d+\n$/);
    // QEMU lists the newest node first: the backing image's, opened after the top one's.
    const nodes = await namedBlockNodes(graph);
    expect(nodes.map((n) => n.drv)).toEqual(["raw", "file", "qcow2", "file"]);
    expect(new Set(nodes.map((n) => n["node-name"])).size).toBe(4);
    expect(st.backing?.["node-name"]).toBe(nodes[0]["node-name"]);
    expect(hmpInfoBlock([info])).toContain(`drive0 (${b.nodeName}): ${top} (qcow2)\n    Attached to:      /machine/peripheral/virtio-disk0/virtio-backend\n    Cache mode:       writeback\n    Backing file:     ${base} (chain depth: 1)\n`);
    await b.close();
  });

  it.runIf(interop)("repairs a lazy-refcount image left dirty when opened read-write, as QEMU does", async () => {
    const f = t.path("dirty.qcow2");
    await createImage({ filename: f, format: "qcow2", pool, size: 4 << 20, clusterSize: 4096, lazyRefcounts: true });
    // The "crashed" writer stands for another process that died: its locks died with it, so
    // it takes none here (an OFD lock of a second fd in this process would refuse the reopen).
    const d = await openImage(f, { pool, locking: "off" });
    for (let i = 0; i < 50; i++) await d.write(i * 40_000, new Uint8Array(5000).fill(i));
    // no flush, no close: the dirty bit is on disk, the refcounts are not
    expect(JSON.parse(qemuImg(["info", "--output=json", "-U", f]).stdout)["dirty-flag"]).toBe(true);
    const again = await openImage(f, { pool });
    await again.close();
    const c = qemuImg(["check", f]);
    expect(c.status).toBe(0);
    expect(JSON.parse(qemuImg(["info", "--output=json", f]).stdout)["dirty-flag"]).toBe(false);
    // The "crashed" writer's file is released only now, after the checks it must not disturb.
    await d.close().catch(() => undefined);
  });
});

describe("I/O pool", () => {
  it("runs in-process on libuv's pool when loaded from .ts, and on piscina when compiled", async () => {
    expect(pool.kind).toBe("uv");
    const dist = buildDist();
    const { pathToFileURL } = await import("node:url");
    const mod = (await import(pathToFileURL(`${dist}/src/block/io-pool.js`).href)) as { IoPool: typeof IoPool };
    const p = new mod.IoPool();
    expect(p.kind).toBe("piscina");
    const f = t.path("pool.raw");
    await createImage({ filename: f, format: "raw", size: 1 << 16, pool });
    const { open } = await import("node:fs/promises");
    const fh = await open(f, "r+");
    await Promise.all(Array.from({ length: 100 }, (_, i) => p.pwrite(fh.fd, i * 512, new Uint8Array(512).fill(i))));
    await p.fdatasync(fh.fd);
    const back = await Promise.all(Array.from({ length: 100 }, (_, i) => p.pread(fh.fd, i * 512, 512)));
    expect(back.every((b, i) => b.every((x) => x === i))).toBe(true);
    const z = await p.deflate(new Uint8Array(4096).fill(7));
    expect(Array.from(await p.inflate(z, 4096)).every((x) => x === 7)).toBe(true);
    await expect(p.pread(9999, 0, 10)).rejects.toThrow();
    await fh.close();
    await p.close();
  });
});
