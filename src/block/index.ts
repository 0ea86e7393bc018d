// The block layer's public face, for the machine, QMP and the CLI. Layers, bottom up:
//   IoPool (piscina workers doing pread/pwrite/fdatasync/zlib)
//   -> BlockDriver: RawDriver, Qcow2Driver (opened by openImage, which follows backing files)
//   -> BlockBackend (one per drive id: validation, accounting, latency histograms)
//   -> devices (virtio-blk) and QMP (query-block, query-blockstats, block-latency-histogram-set).

export { IoPool, IoError } from "./io-pool.js";
export type { BlockDriver, BlockExtent, Qcow2Specific } from "./driver.js";
export { openImage, probeFormat, backingPath, type OpenOptions } from "./image.js";
export { createImage, parseSize, type CreateOptions } from "./create.js";
export { checkQcow2, type CheckResult } from "./qcow2-check.js";
export { Qcow2Driver } from "./qcow2.js";
export { RawDriver } from "./raw.js";
export { ImageOpenError } from "./qcow2-format.js";
export { BlockBackend, InvalidRequestError, parseDrive, splitKeyValues, type DriveOptions } from "./backend.js";
export { BlockAcctStats, BlockAcctType, LatencyHistogram, TimedAverage, nowNs } from "./accounting.js";
export {
  blockstatsInfo,
  blockInfo,
  namedBlockNodes,
  nodeBlockstats,
  setLatencyHistogram,
  blockDeviceStats,
  type BlockStats,
  type BlockInfo,
  type BlockDeviceInfo,
  type BlockDeviceStats,
  type LatencyHistogramSetArgs,
} from "./qapi-block.js";
export { BlockGraph, BlockNode } from "./node.js";
export { BlockLayer, type DeviceSpec, type DrivePlug, type DeviceAttachment } from "./blockdev.js";
export { blockHandlers, type BlockHandlers } from "./qmp-block.js";
export { hmpInfoBlock, hmpInfoBlockstats } from "./hmp-block.js";
export { imageInfo, type ImageInfo } from "./info.js";
