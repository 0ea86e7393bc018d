// The machine's drives and block nodes on the core thread: minivm's twin of QEMU's blockdev.c.
// It opens `--drive` and `--blockdev` images into the node graph (node.ts), adds and deletes
// nodes for blockdev-add / blockdev-del, and lists the drives that want a virtio-blk device in
// QEMU's plug order; the board creates the devices (src/core/virtio-plug.ts) and reports back.

import type { BlockdevOptions, BlockdevRef, BlockdevRefOrNull } from "../qapi/generated/types.js";
import { QmpError, genericError } from "../qmp/errors.js";
import { BlockBackend, parseDrive } from "./backend.js";
import type { BlockDriver } from "./driver.js";
import { activateImage, inactivateImage, openImage } from "./image.js";
import { IoPool } from "./io-pool.js";
import { ImageLockError, type LockingMode } from "./lock.js";
import { BlockGraph, type BlockNode } from "./node.js";

/** `--device virtio-blk-device,drive=NAME,id=ID`: NAME is a drive id or a node name. */
export interface DeviceSpec {
  drive: string;
  id: string | undefined;
}

/** A drive that wants a virtio-blk device, and the device's `id=` if the user gave one. */
export interface DrivePlug {
  backend: BlockBackend;
  deviceId: string | undefined;
}

/** What the board tells the block layer about a device it created for a drive. */
export interface DeviceAttachment {
  backend: BlockBackend;
  deviceId: string | undefined;
  /** The device's QOM path, which QEMU also accepts where it wants a device id. */
  qomPath: string;
  /** The device's side: told when block_resize changes the disk (blk_dev_resize_cb). */
  ops: { resized(): void };
}

export class BlockLayer {
  readonly pool = new IoPool();
  readonly graph = new BlockGraph();
  /** Every BlockBackend, in query-block's order: plugged drives in plug order, then the rest. */
  private backendList: BlockBackend[] = [];
  /** The drives that want a virtio-blk device, in QEMU's plug order (see open). */
  readonly plugs: DrivePlug[] = [];
  /**
   * BDRV_O_INACTIVE for every image: a migration destination before it starts, a source after
   * switchover. Inactive images hold no lock and write no metadata (lock.ts, activateAll).
   */
  private inactive = false;

  /**
   * Opens the command line's nodes and drives and matches devices to them. QEMU creates
   * -blockdev nodes before -drive ones; `if=virtio` drives get a device each, in drive
   * order, then every -device in command-line order. `inactive` is for a migration
   * destination (`--incoming`): its images are opened without locks until activateAll.
   */
  static async open(drives: string[], blockdevs: BlockdevOptions[], devices: DeviceSpec[], opts: { inactive?: boolean } = {}): Promise<BlockLayer> {
    const layer = new BlockLayer();
    layer.inactive = opts.inactive ?? false;
    try {
      for (const b of blockdevs) await layer.addNode(b);
      // `if=none` drives wait for a -device that names them; QEMU keeps the unclaimed ones.
      const unplugged = new Map<string, BlockBackend>();
      // QEMU refuses a repeated id while it parses the options, before any image is opened.
      const parsed = drives.map((text, i) => parseDrive(text, i));
      const ids = new Set<string>();
      for (const [i, d] of parsed.entries()) {
        if (ids.has(d.id)) throw new Error(`--drive ${drives[i]}: Duplicate ID '${d.id}' for drive`);
        ids.add(d.id);
      }
      for (const d of parsed) {
        const backend = await BlockBackend.open({ ...d, pool: layer.pool, graph: layer.graph, inactive: layer.inactive });
        if (d.if === "virtio") layer.plugs.push({ backend, deviceId: undefined });
        else unplugged.set(backend.id, backend);
        layer.backendList.push(backend);
      }
      for (const dev of devices) {
        const drive = unplugged.get(dev.drive);
        const node = layer.graph.get(dev.drive);
        if (drive !== undefined) {
          unplugged.delete(dev.drive);
          layer.plugs.push({ backend: drive, deviceId: dev.id });
        } else if (node !== undefined && node.monitorOwned && node.backend === null) {
          // A device on a -blockdev node gets an anonymous BlockBackend, as in QEMU.
          const backend = new BlockBackend("", node.drv, { root: node });
          layer.backendList.push(backend);
          layer.plugs.push({ backend, deviceId: dev.id });
        } else {
          throw new Error(`Property 'virtio-blk-device.drive' can't find value '${dev.drive}'`);
        }
      }
      const plugged = new Set(layer.plugs.map((p) => p.backend));
      layer.backendList = [...layer.plugs.map((p) => p.backend), ...layer.backendList.filter((b) => !plugged.has(b))];
    } catch (e) {
      await layer.close();
      throw e;
    }
    return layer;
  }

  /** The board created these devices: query-block's `qdev` and device lookups follow them. */
  attachDevices(attachments: readonly DeviceAttachment[]): void {
    for (const a of attachments) {
      a.backend.qomPath = a.qomPath;
      // query-block names a device by its id when it has one, by its QOM path otherwise.
      a.backend.qdev = a.deviceId ?? a.qomPath;
      a.backend.devOps = a.ops;
    }
  }

  /** Every BlockBackend, plugged drives first (query-block, query-blockstats). */
  get backends(): readonly BlockBackend[] {
    return this.backendList;
  }

  /** QEMU's qmp_get_blk(NULL, id): a device id or a QOM path. */
  backendByDevice(id: string): BlockBackend {
    const b = this.backendList.find((x) => x.qomPath !== undefined && (x.qdev === id || x.qomPath === id));
    if (b === undefined) throw new QmpError("DeviceNotFound", `Device '${id}' not found`);
    return b;
  }

  /** A backend by drive id (device=) or by the node it is attached to (node-name=). */
  backendByName(device: string | undefined, nodeName: string | undefined): BlockBackend | undefined {
    return this.backendList.find((b) => (device !== undefined && b.id === device) || (nodeName !== undefined && b.nodeName === nodeName));
  }

  /** A reference to a node by name, or an inline `file` node (minivm takes only those). */
  private refFilename(ref: BlockdevRef, what: string): { filename: string; node?: BlockNode; nodeName?: string; locking?: LockingMode } {
    if (typeof ref === "string") {
      const n = this.graph.get(ref);
      if (n === undefined) throw genericError(`Cannot find device='${ref}' nor node-name='${ref}'`);
      return { filename: n.drv.filename, node: n };
    }
    if (ref.driver !== "file") throw genericError(`${what}: minivm takes a 'file' node here, not '${ref.driver}'`);
    return { filename: ref.filename, nodeName: ref["node-name"], locking: ref.locking };
  }

  /** blockdev-add / -blockdev: opens the image and adds its nodes, the top one owned by the monitor. */
  async addNode(o: BlockdevOptions): Promise<BlockNode> {
    const nodeName = o["node-name"];
    if (nodeName !== undefined) this.graph.checkFree(nodeName);
    const readOnly = o["read-only"] ?? false;
    let file: { filename: string; node?: BlockNode; nodeName?: string; locking?: LockingMode };
    let backing: BlockdevRefOrNull | undefined;
    let format: "raw" | "qcow2" = "raw";
    switch (o.driver) {
      case "file":
        file = { filename: o.filename, locking: o.locking };
        break;
      case "raw":
        file = this.refFilename(o.file, "file");
        break;
      case "qcow2":
        file = this.refFilename(o.file, "file");
        backing = o.backing;
        format = "qcow2";
        break;
    }
    let backingOpt: string | null | undefined;
    let backingNode: BlockNode | undefined;
    if (backing === null) backingOpt = null;
    else if (backing !== undefined) {
      const r = this.refFilename(backing, "backing");
      backingOpt = r.filename;
      backingNode = r.node;
    }
    let drv: BlockDriver;
    try {
      drv = await openImage(file.filename, {
        pool: this.pool,
        format,
        readOnly,
        backing: backingOpt,
        locking: file.locking,
        inactive: this.inactive,
        // A lone file node has no user yet: QEMU takes no permission on it (lock.ts).
        protocolOnly: o.driver === "file",
      });
    } catch (e) {
      // QMP reports the error without QEMU's hint line (error_append_hint is for humans).
      const msg = e instanceof ImageLockError ? e.desc : e instanceof Error ? e.message : String(e);
      throw genericError(/ENOENT/.test(msg) ? `Could not open '${file.filename}': No such file or directory` : msg);
    }
    try {
      const node =
        o.driver === "file"
          ? this.graph.addProtocolNode(nodeName, drv, readOnly)
          : this.graph.addChain(drv, { nodeName, fileNodeName: file.nodeName, readOnly, file: file.node, backing: backingNode });
      node.monitorOwned = true;
      return node;
    } catch (e) {
      await drv.close().catch(() => undefined);
      throw e;
    }
  }

  /** blockdev-del: refused in QEMU's words unless the monitor owns the node and no one uses it. */
  async delNode(nodeName: string): Promise<void> {
    const node = this.graph.checkDeletable(nodeName);
    for (const d of this.graph.remove(node)) await d.close();
  }

  /** Every driver chain that is open: one per node that owns its driver. */
  private chains(): BlockDriver[] {
    const seen = new Set<BlockDriver>();
    const out: BlockDriver[] = [];
    for (const n of this.graph.all()) {
      if (!n.ownsDriver || seen.has(n.drv)) continue;
      seen.add(n.drv);
      out.push(n.drv);
    }
    return out;
  }

  get isInactive(): boolean {
    return this.inactive;
  }

  /**
   * bdrv_inactivate_all, for a migration source at switchover (guest stopped, requests
   * drained): every image is flushed, a qcow2 marked clean, then every lock released, so that
   * the destination may take the images. A later activateAll takes them back (a failed
   * migration, or `cont` after it).
   */
  async inactivateAll(): Promise<void> {
    if (this.inactive) return;
    for (const d of this.chains()) await inactivateImage(d);
    this.inactive = true;
  }

  /**
   * bdrv_activate_all, for a destination about to run the guest (or a source taking its
   * images back): the locks are taken, refused in QEMU's words ("Failed to get \"write\" lock")
   * while another process still holds an image, and cached metadata is read again.
   * On failure, the images activated so far are released again and the layer stays inactive.
   */
  async activateAll(): Promise<void> {
    if (!this.inactive) return;
    const done: BlockDriver[] = [];
    try {
      for (const d of this.chains()) {
        await activateImage(d);
        done.push(d);
      }
    } catch (e) {
      for (const d of done) await inactivateImage(d).catch(() => undefined);
      throw e instanceof ImageLockError ? genericError(e.desc) : e;
    }
    this.inactive = false;
  }

  /** Flush and close everything (shutdown): no acknowledged write is left in a buffer. */
  async close(): Promise<void> {
    const closed = new Set<BlockDriver>();
    for (const b of this.backendList) {
      closed.add(b.drv);
      try {
        await b.drv.flush();
      } catch {
        // closing still releases the file; the flush error has nowhere to go at shutdown
      }
      await b.close().catch(() => undefined);
    }
    for (const n of this.graph.all()) {
      if (!n.ownsDriver || closed.has(n.drv)) continue;
      closed.add(n.drv);
      await n.drv.close().catch(() => undefined);
    }
    await this.pool.close();
  }
}
