// The machine's drives and named block nodes, on the core thread (DESIGN.md §5): opens
// `--drive`/`-blockdev` images through the block layer, plugs each drive into a virtio-blk
// device, and answers the block QMP commands in QEMU 7.2's words.

import { VirtioBlk } from "../../devices/virtio-blk.js";
import type { VirtioBackend } from "../../devices/virtio-mmio.js";
import { BlockBackend, NodeNames, parseDrive } from "../block/backend.js";
import type { BlockDriver } from "../block/driver.js";
import { openImage } from "../block/image.js";
import { imageInfo } from "../block/info.js";
import { IoPool } from "../block/io-pool.js";
import { blockInfo, blockstatsInfo, namedBlockNodes, setLatencyHistogram } from "../block/qapi-block.js";
import type { QmpHandlers } from "../qapi/generated/commands.js";
import type { BlockDeviceInfo, BlockdevOptions, BlockdevRef, BlockdevRefOrNull, BlockStats } from "../qapi/generated/types.js";
import { QmpError, genericError } from "../qmp/errors.js";
import { VIRTIO_MMIO_COUNT } from "./machine.js";

export type BlockHandlers = Pick<
  QmpHandlers,
  "query-block" | "query-blockstats" | "query-named-block-nodes" | "block_resize" | "block-latency-histogram-set" | "blockdev-add" | "blockdev-del"
>;

/** A virtio-blk device and the drive behind it. */
interface Attached {
  backend: BlockBackend;
  device: VirtioBlk;
  slot: number;
  /** `-device ...,id=` if given. */
  deviceId: string | undefined;
  /** The device's QOM path, which QEMU also accepts where it wants a device id. */
  qdev: string;
}

/** A node added with blockdev-add or -blockdev and not (yet) attached to a device. */
interface NamedNode {
  nodeName: string;
  driver: "file" | "raw" | "qcow2";
  drv: BlockDriver;
}

export interface DeviceSpec {
  drive: string;
  id: string | undefined;
}

function nodeInfo(info: Omit<BlockDeviceInfo, "image">, image: BlockDeviceInfo["image"]): BlockDeviceInfo {
  return { ...info, image } as BlockDeviceInfo;
}

export class BlockLayer {
  readonly pool = new IoPool();
  private readonly nodeNames = new NodeNames();
  private readonly attached: Attached[] = [];
  private readonly nodes = new Map<string, NamedNode>();
  /** `if=none` drives no device took: QEMU keeps them, visible in query-block. */
  private readonly loose: BlockBackend[] = [];
  private anonDevices = 0;

  /** virtio-mmio slot n's backend, for the Machine. */
  readonly virtio: (VirtioBackend | null)[] = Array.from({ length: VIRTIO_MMIO_COUNT }, () => null);

  /**
   * Open the command line's drives, nodes and devices. QEMU plugs virtio-mmio devices into
   * the highest free slot first (its buses are listed in reverse), so the first disk is slot 7.
   */
  static async open(drives: string[], blockdevs: BlockdevOptions[], devices: DeviceSpec[]): Promise<BlockLayer> {
    const layer = new BlockLayer();
    try {
      for (const b of blockdevs) await layer.addNode(b);
      // `if=none` drives wait for a -device that names them.
      const unplugged = new Map<string, BlockBackend>();
      for (const [i, text] of drives.entries()) {
        const d = parseDrive(text, i);
        const backend = await BlockBackend.open({ ...d, pool: layer.pool, nodeNames: layer.nodeNames });
        if (d.if === "virtio") layer.attach(backend, undefined);
        else unplugged.set(backend.id, backend);
      }
      for (const dev of devices) {
        const drive = unplugged.get(dev.drive);
        const node = layer.nodes.get(dev.drive);
        if (drive !== undefined) {
          unplugged.delete(dev.drive);
          layer.attach(drive, dev.id);
        } else if (node !== undefined) {
          // A device on a -blockdev node gets an anonymous BlockBackend, as in QEMU.
          layer.nodes.delete(dev.drive);
          layer.attach(new BlockBackend("", node.drv, { nodeName: node.nodeName, nodeNames: layer.nodeNames }), dev.id);
        } else {
          throw new Error(`Property 'virtio-blk-device.drive' can't find value '${dev.drive}'`);
        }
      }
      for (const b of unplugged.values()) layer.loose.push(b);
    } catch (e) {
      await layer.close();
      throw e;
    }
    return layer;
  }

  private attach(backend: BlockBackend, deviceId: string | undefined): void {
    const slot = this.virtio.lastIndexOf(null);
    if (slot < 0) throw new Error(`no free virtio-mmio slot: the board has ${VIRTIO_MMIO_COUNT}`);
    const qdev = deviceId === undefined ? `/machine/peripheral-anon/device[${this.anonDevices++}]` : `/machine/peripheral/${deviceId}`;
    // query-block names a device by its id when it has one, by its QOM path otherwise.
    backend.qdev = deviceId ?? qdev;
    const device = new VirtioBlk(backend);
    this.virtio[slot] = device;
    this.attached.push({ backend, device, slot, deviceId, qdev });
  }

  get backends(): BlockBackend[] {
    return this.attached.map((a) => a.backend);
  }

  /** QEMU's qmp_get_blk(NULL, id): a device id or a QOM path. */
  private deviceById(id: string): Attached {
    const a = this.attached.find((x) => x.deviceId === id || x.qdev === id);
    if (a === undefined) throw new QmpError("DeviceNotFound", `Device '${id}' not found`);
    return a;
  }

  private async openRef(ref: BlockdevRef, what: string): Promise<{ filename: string }> {
    if (typeof ref === "string") {
      const n = this.nodes.get(ref);
      if (n === undefined) throw genericError(`Cannot find device='' nor node-name='${ref}'`);
      return { filename: n.drv.filename };
    }
    if (ref.driver !== "file") throw genericError(`${what}: minivm takes a 'file' node here, not '${ref.driver}'`);
    return { filename: ref.filename };
  }

  /** blockdev-add / -blockdev. */
  async addNode(o: BlockdevOptions): Promise<void> {
    const nodeName = o["node-name"] ?? this.nodeNames.generate();
    if (this.nodes.has(nodeName) || this.attached.some((a) => a.backend.nodeName === nodeName)) {
      throw genericError(`Duplicate nodes with node-name='${nodeName}'`);
    }
    let drv: BlockDriver;
    const readOnly = o["read-only"] ?? false;
    const open = async (filename: string, format: "raw" | "qcow2", backing?: BlockdevRefOrNull): Promise<BlockDriver> => {
      let backingOpt: string | null | undefined;
      if (backing === null) backingOpt = null;
      else if (backing !== undefined) backingOpt = (await this.openRef(backing, "backing")).filename;
      try {
        return await openImage(filename, { pool: this.pool, format, readOnly, backing: backingOpt });
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        throw genericError(/ENOENT/.test(msg) ? `Could not open '${filename}': No such file or directory` : msg);
      }
    };
    switch (o.driver) {
      case "file":
        drv = await open(o.filename, "raw");
        break;
      case "raw":
        drv = await open((await this.openRef(o.file, "file")).filename, "raw");
        break;
      case "qcow2":
        drv = await open((await this.openRef(o.file, "file")).filename, "qcow2", o.backing);
        break;
    }
    this.nodes.set(nodeName, { nodeName, driver: o.driver, drv });
  }

  private async nodeInfos(flat: boolean): Promise<BlockDeviceInfo[]> {
    const out: BlockDeviceInfo[] = [];
    for (const a of this.attached) out.push(...(await namedBlockNodes(a.backend, flat)));
    for (const n of this.nodes.values()) {
      let depth = 0;
      for (let x = n.drv.backing; x; x = x.backing) depth++;
      const base = {
        file: n.drv.filename,
        "node-name": n.nodeName,
        ro: n.drv.readOnly,
        drv: n.driver,
        ...(n.drv.backingFilename !== undefined ? { backing_file: n.drv.backingFilename } : {}),
        backing_file_depth: depth,
        encrypted: false,
        detect_zeroes: "off" as const,
        bps: 0,
        bps_rd: 0,
        bps_wr: 0,
        iops: 0,
        iops_rd: 0,
        iops_wr: 0,
        cache: { writeback: true, direct: false, "no-flush": false },
        write_threshold: 0,
      };
      const image = (await imageInfo(n.drv, n.drv.filename, !flat)) as unknown as BlockDeviceInfo["image"];
      if (n.driver === "file") image.format = "file";
      out.push(nodeInfo(base, image));
    }
    return out;
  }

  handlers(): BlockHandlers {
    return {
      "query-block": async () =>
        (await Promise.all([...this.backends, ...this.loose].map((b) => blockInfo(b)))) as unknown as Awaited<ReturnType<QmpHandlers["query-block"]>>,
      "query-blockstats": ({ "query-nodes": queryNodes }) => {
        const stats = [...this.backends, ...this.loose].map((b) => blockstatsInfo(b)) as unknown as BlockStats[];
        if (queryNodes !== true) return stats;
        // Named nodes: the drives' top nodes (with their counters), then blockdev-added ones.
        return [
          ...stats.map(({ device: _d, qdev: _q, ...node }) => node),
          ...[...this.nodes.values()].map((n) => ({ "node-name": n.nodeName, stats: zeroStats() })),
        ] as BlockStats[];
      },
      "query-named-block-nodes": ({ flat }) => this.nodeInfos(flat === true),
      block_resize: async ({ device, "node-name": nodeName, size }) => {
        const a = this.attached.find((x) => (device !== undefined && x.backend.id === device) || (nodeName !== undefined && x.backend.nodeName === nodeName));
        const n = a === undefined && nodeName !== undefined ? this.nodes.get(nodeName) : undefined;
        if (a !== undefined) {
          await a.backend.resize(Number(size));
          // The guest learns the new capacity through a config-change interrupt.
          a.device.resized();
          return {};
        }
        if (n === undefined) throw genericError(`Cannot find device='${device ?? ""}' nor node-name='${nodeName ?? ""}'`);
        const resizable = n.drv as BlockDriver & { truncate?: (size: number) => Promise<void> };
        if (resizable.truncate === undefined) throw genericError(`Image format '${n.drv.format}' does not support resizing`);
        await resizable.truncate(Number(size));
        return {};
      },
      "block-latency-histogram-set": (args) => {
        const a = this.deviceById(args.id);
        setLatencyHistogram(a.backend, {
          id: args.id,
          boundaries: args.boundaries?.map(Number),
          "boundaries-read": args["boundaries-read"]?.map(Number),
          "boundaries-write": args["boundaries-write"]?.map(Number),
          "boundaries-flush": args["boundaries-flush"]?.map(Number),
        });
        return {};
      },
      "blockdev-add": async (o) => {
        await this.addNode(o);
        return {};
      },
      "blockdev-del": async ({ "node-name": nodeName }) => {
        const n = this.nodes.get(nodeName);
        if (n === undefined) {
          if (this.attached.some((a) => a.backend.nodeName === nodeName)) {
            throw genericError(`Node ${nodeName} is in use`);
          }
          throw genericError(`Failed to find node with node-name='${nodeName}'`);
        }
        this.nodes.delete(nodeName);
        await n.drv.close();
        return {};
      },
    };
  }

  /** Flush and close everything (shutdown): no acknowledged write is left in a buffer. */
  async close(): Promise<void> {
    for (const a of this.attached) {
      try {
        await a.backend.drv.flush();
        await a.backend.drv.close();
      } catch {
        // keep closing the others
      }
    }
    for (const n of this.nodes.values()) await n.drv.close().catch(() => undefined);
    for (const b of this.loose) await b.drv.close().catch(() => undefined);
    await this.pool.close?.();
  }
}

function zeroStats(): BlockStats["stats"] {
  const z = 0;
  return {
    rd_bytes: z, wr_bytes: z, unmap_bytes: z, rd_operations: z, wr_operations: z, flush_operations: z,
    unmap_operations: z, rd_total_time_ns: z, wr_total_time_ns: z, flush_total_time_ns: z,
    unmap_total_time_ns: z, wr_highest_offset: z, rd_merged: z, wr_merged: z, unmap_merged: z,
    failed_rd_operations: z, failed_wr_operations: z, failed_flush_operations: z, failed_unmap_operations: z,
    invalid_rd_operations: z, invalid_wr_operations: z, invalid_flush_operations: z, invalid_unmap_operations: z,
    account_invalid: false, account_failed: false, timed_stats: [],
  };
}
