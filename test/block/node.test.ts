// The block node graph on its own: names, children, who uses a node, what deleting releases.
import { describe, expect, it } from "vitest";
import type { BlockDriver } from "../../src/block/driver.js";
import { BlockGraph } from "../../src/block/node.js";

/** Just enough of a driver for the graph, which reads format, backing and readOnly. */
function chain(formats: Array<"qcow2" | "raw">): BlockDriver {
  let below: BlockDriver | null = null;
  for (let i = formats.length - 1; i >= 0; i--) {
    below = { format: formats[i], filename: `img${i}`, readOnly: i > 0, backing: below } as unknown as BlockDriver;
  }
  return below as BlockDriver;
}

describe("BlockGraph", () => {
  it("registers a chain as QEMU opens it: each image's protocol node, then its format node, top image first", () => {
    const g = new BlockGraph();
    const top = g.addChain(chain(["qcow2", "qcow2", "raw"]), { nodeName: "top", readOnly: false });
    expect(g.all().map((n) => `${n.driverName}:${n.drv.filename}`)).toEqual([
      "file:img0", "qcow2:img0", "file:img1", "qcow2:img1", "file:img2", "raw:img2",
    ]);
    expect(top.nodeName).toBe("top");
    expect(top.backingDepth).toBe(2);
    expect(top.backing?.readOnly).toBe(true);
    expect(top.file?.driverName).toBe("file");
    expect(g.all().filter((n) => n.ownsDriver).map((n) => n.nodeName)).toEqual(["top"]);
    expect(new Set(g.all().map((n) => n.nodeName)).size).toBe(6);
    expect(g.all().filter((n) => n.nodeName !== "top").every((n) => /^#block\d{3}$/.test(n.nodeName))).toBe(true);
  });

  it("refuses a duplicate name in QEMU's words and leaves the graph as it was", () => {
    const g = new BlockGraph();
    g.addChain(chain(["raw"]), { nodeName: "a", readOnly: false });
    const before = g.all().map((n) => n.nodeName);
    expect(() => g.addChain(chain(["qcow2"]), { nodeName: "a", readOnly: false })).toThrow("Duplicate nodes with node-name='a'");
    expect(() => g.addChain(chain(["qcow2"]), { nodeName: "b", fileNodeName: "a", readOnly: false })).toThrow("Duplicate nodes with node-name='a'");
    expect(g.all().map((n) => n.nodeName)).toEqual(before);
  });

  it("refuses blockdev-del for a missing node, a node with a backend, an implicit child and a referenced node", () => {
    const g = new BlockGraph();
    const drive = g.addChain(chain(["qcow2", "raw"]), { nodeName: "d", readOnly: false });
    drive.backend = { id: "drive0" };
    const f = g.addProtocolNode("f", chain(["raw"]), false);
    f.monitorOwned = true;
    const r = g.addChain(chain(["raw"]), { nodeName: "r", readOnly: false, file: f });
    r.monitorOwned = true;
    expect(() => g.checkDeletable("nope")).toThrow("Failed to find node with node-name='nope'");
    expect(() => g.checkDeletable("d")).toThrow("Node d is in use");
    expect(() => g.checkDeletable(drive.file?.nodeName ?? "")).toThrow(/^Node #block\d+ is not owned by the monitor$/);
    expect(() => g.checkDeletable("f")).toThrow("Block device f is in use");
    expect(g.checkDeletable("r")).toBe(r);
  });

  it("deleting a node releases its implicit children but not a node it only referenced", () => {
    const g = new BlockGraph();
    const f = g.addProtocolNode("f", chain(["raw"]), false);
    f.monitorOwned = true;
    const r = g.addChain(chain(["raw"]), { nodeName: "r", readOnly: false, file: f });
    const q = g.addChain(chain(["qcow2", "raw"]), { nodeName: "q", readOnly: false });
    const closed = g.remove(q);
    expect(closed).toEqual([q.drv]);
    expect(g.all().map((n) => n.nodeName)).toEqual(["f", "r"]);
    expect(g.remove(r)).toEqual([r.drv]);
    expect(g.all().map((n) => n.nodeName)).toEqual(["f"]);
  });
});

describe("BlockLayer.open", () => {
  it("refuses two drives with one id in QEMU's words, before opening either image", async () => {
    const { BlockLayer } = await import("../../src/block/blockdev.js");
    // Neither file exists: the id check must come first, as QEMU's option parsing does.
    await expect(BlockLayer.open(["file=/nonexistent/a.img,format=raw,if=none,id=a", "file=/nonexistent/b.img,format=raw,if=none,id=a"], [], [])).rejects.toThrow(
      "--drive file=/nonexistent/b.img,format=raw,if=none,id=a: Duplicate ID 'a' for drive",
    );
  });
});
