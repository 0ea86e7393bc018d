// The block node graph: minivm's BlockDriverState (QEMU include/block/block_int-common.h).
// A node is one layer of an image as QMP sees it: a format node (qcow2, raw) over a protocol
// node ("file"), with a `backing` child for the image below. The graph owns every node by
// name, hands out QEMU's automatic "#blockNNN" names, and knows who uses a node, so that
// blockdev-del can refuse in QEMU's words (blockdev.c, qmp_blockdev_del).

import { genericError } from "../qmp/errors.js";
import type { BlockDriver } from "./driver.js";

/** The device-facing side attached to a node (QEMU: bs->parents has a BlockBackend). */
export interface NodeUser {
  readonly id: string;
}

export class BlockNode {
  /** Child that holds this node's bytes (bs->file): the protocol node under a format node. */
  file: BlockNode | null = null;
  /** The image below this one (bs->backing). */
  backing: BlockNode | null = null;
  /** The BlockBackend attached to this node, if any (bdrv_has_blk). */
  backend: NodeUser | null = null;
  /**
   * Added by blockdev-add or --blockdev, as opposed to opened implicitly as a child or by
   * --drive: only these may be deleted (QEMU's monitor_bdrv_states).
   */
  monitorOwned = false;

  constructor(
    readonly nodeName: string,
    /** The driver QMP reports in `drv`: the format, or "file" for a protocol node. */
    readonly driverName: "qcow2" | "raw" | "file",
    /**
     * The driver instance serving this node's bytes. A protocol node shares its format
     * node's instance: minivm's format drivers own their file handle.
     */
    readonly drv: BlockDriver,
    readonly readOnly: boolean,
    /** True for the node that opened `drv` and must close it; shared views do not. */
    readonly ownsDriver: boolean,
  ) {}

  /** bdrv_get_backing_file_depth: how many images lie below this one. */
  get backingDepth(): number {
    let n = 0;
    for (let b = this.backing; b; b = b.backing) n++;
    return n;
  }

  children(): BlockNode[] {
    const out: BlockNode[] = [];
    if (this.file) out.push(this.file);
    if (this.backing) out.push(this.backing);
    return out;
  }
}

export class BlockGraph {
  /** Every node, in creation order (QEMU's graph_bdrv_states). */
  private readonly nodes = new Map<string, BlockNode>();
  private nextName = 0;

  /** QEMU's automatic node names: "#block" and a counter, one sequence per machine. */
  generateName(): string {
    let name: string;
    do name = `#block${String(this.nextName++).padStart(3, "0")}`;
    while (this.nodes.has(name));
    return name;
  }

  /** bdrv_assign_node_name's uniqueness rule, in QEMU's words. */
  checkFree(nodeName: string): void {
    if (this.nodes.has(nodeName)) throw genericError(`Duplicate nodes with node-name='${nodeName}'`);
  }

  add(node: BlockNode): BlockNode {
    this.checkFree(node.nodeName);
    this.nodes.set(node.nodeName, node);
    return node;
  }

  get(nodeName: string): BlockNode | undefined {
    return this.nodes.get(nodeName);
  }

  /** All nodes, oldest first. */
  all(): BlockNode[] {
    return [...this.nodes.values()];
  }

  /** The nodes that have `node` as a `file` or `backing` child. */
  parentsOf(node: BlockNode): BlockNode[] {
    return this.all().filter((p) => p.file === node || p.backing === node);
  }

  /**
   * Registers the nodes of one opened driver chain: for each image, top first, its protocol
   * node and then its format node, as QEMU opens a format node's `file` child before the
   * node itself gets its name. Returns the top format node. `file` and `backing` name existing
   * nodes to use as the top's children instead (blockdev-add with a node-name reference).
   */
  addChain(drv: BlockDriver, opts: { nodeName?: string; fileNodeName?: string; readOnly: boolean; file?: BlockNode; backing?: BlockNode }): BlockNode {
    if (opts.nodeName !== undefined) this.checkFree(opts.nodeName);
    if (opts.fileNodeName !== undefined) this.checkFree(opts.fileNodeName);
    const created: BlockNode[] = [];
    try {
      let top: BlockNode | null = null;
      let above: BlockNode | null = null;
      for (let d: BlockDriver | null = drv; d; d = d.backing) {
        const isTop = above === null;
        // Backing images are always opened read-only (bdrv_backing_options).
        const ro = isTop ? opts.readOnly : true;
        let file: BlockNode;
        if (isTop && opts.file !== undefined) file = opts.file;
        else {
          const fileName = isTop && opts.fileNodeName !== undefined ? opts.fileNodeName : this.generateName();
          file = this.add(new BlockNode(fileName, "file", d, ro, false));
          created.push(file);
        }
        const name = isTop && opts.nodeName !== undefined ? opts.nodeName : this.generateName();
        const node = this.add(new BlockNode(name, d.format, d, ro, isTop));
        created.push(node);
        node.file = file;
        if (above) above.backing = node;
        else top = node;
        above = node;
        if (isTop && opts.backing !== undefined) {
          node.backing = opts.backing;
          break;
        }
      }
      return top as BlockNode;
    } catch (e) {
      for (const n of created) this.nodes.delete(n.nodeName);
      throw e;
    }
  }

  /** A protocol node on its own (blockdev-add with driver "file"), owning its driver. */
  addProtocolNode(nodeName: string | undefined, drv: BlockDriver, readOnly: boolean): BlockNode {
    return this.add(new BlockNode(nodeName ?? this.generateName(), "file", drv, readOnly, true));
  }

  /**
   * qmp_blockdev_del's checks, in its order and words: the node exists, has no BlockBackend,
   * was added by the monitor, and nothing else holds it.
   */
  checkDeletable(nodeName: string): BlockNode {
    const node = this.nodes.get(nodeName);
    if (node === undefined) throw genericError(`Failed to find node with node-name='${nodeName}'`);
    if (node.backend !== null) throw genericError(`Node ${nodeName} is in use`);
    if (!node.monitorOwned) throw genericError(`Node ${nodeName} is not owned by the monitor`);
    if (this.parentsOf(node).length > 0) throw genericError(`Block device ${nodeName} is in use`);
    return node;
  }

  /**
   * Takes `node` out of the graph with every child no one else holds (bdrv_unref dropping
   * the last reference), and returns the drivers that are now to be closed.
   */
  remove(node: BlockNode): BlockDriver[] {
    const drivers: BlockDriver[] = [];
    const drop = (n: BlockNode): void => {
      this.nodes.delete(n.nodeName);
      if (n.ownsDriver) drivers.push(n.drv);
      for (const c of n.children()) {
        if (!this.nodes.has(c.nodeName) || c.monitorOwned || c.backend !== null) continue;
        if (this.parentsOf(c).length === 0) drop(c);
      }
    };
    drop(node);
    return drivers;
  }
}
