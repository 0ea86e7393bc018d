// The qcow2 on-disk format (docs/interop/qcow2.txt): header fields, feature bits, header
// extensions, and the bit layout of L1/L2/refcount entries. Parsing validates every field
// and refuses a hostile header with QEMU's own words (block/qcow2.c, qcow2_do_open).
// All values are big-endian; 64-bit fields are read as two 32-bit halves into JS numbers.

import { QmpError } from "../qmp/errors.js";

export const QCOW_MAGIC = 0x514649fb; // "QFI\xfb"
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
export const QCOW_MAX_REFTABLE_SIZE = 8 * 1024 * 1024;
export const QCOW_MAX_L1_SIZE = 32 * 1024 * 1024;
export const QCOW_MAX_SNAPSHOTS = 65536;
export const QCOW_SNAPSHOT_HEADER_SIZE = 40;

export const INCOMPAT_DIRTY = 1;
export const INCOMPAT_CORRUPT = 2;
export const INCOMPAT_DATA_FILE = 4;
export const INCOMPAT_COMPRESSION = 8;
export const INCOMPAT_EXTL2 = 16;
/** What minivm can open: dirty, corrupt (read-only), compression bit (then refused for zstd). */
export const INCOMPAT_SUPPORTED = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION;
export const COMPAT_LAZY_REFCOUNTS = 1;
/** Autoclear bits minivm keeps (none: it does not maintain bitmaps or a raw data file). */
export const AUTOCLEAR_SUPPORTED = 0;
/** Autoclear bit 1: the external data file holds the guest data in raw form. */
export const AUTOCLEAR_DATA_FILE_RAW = 2;

export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

export const V2_HEADER_LENGTH = 72;
/** QEMU writes 112: the 104-byte v3 header, compression_type, 7 bytes of padding. */
export const V3_HEADER_LENGTH = 112;

/** The feature-name table QEMU ≥5.2 writes (qcow2.c, qcow2_update_header). */
export const FEATURE_NAMES: ReadonlyArray<[type: number, bit: number, name: string]> = [
  [0, 0, "dirty bit"],
  [0, 1, "corrupt bit"],
  [0, 2, "external data file"],
  [0, 3, "compression type"],
  [0, 4, "extended L2 entries"],
  [1, 0, "lazy refcounts"],
  [2, 0, "bitmaps"],
  [2, 1, "raw external data"],
];

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  /** Bits 0-31 of the feature words, unsigned; bits 32-63 in the `...High` fields. */
  incompatible: number;
  compatible: number;
  autoclear: number;
  incompatibleHigh?: number;
  compatibleHigh?: number;
  autoclearHigh?: number;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
}

export interface Qcow2Extensions {
  backingFormat: string | undefined;
  featureNames: Map<string, string>;
  /** Extensions minivm does not interpret, kept so a rewrite preserves them. */
  unknown: Array<{ type: number; data: Uint8Array }>;
  hasBitmaps: boolean;
  hasDataFile: boolean;
}

/** An error opening an image: the message is QEMU's, and it is QMP-ready (GenericError). */
export class ImageOpenError extends QmpError {
  constructor(desc: string) {
    super("GenericError", desc);
    this.name = "ImageOpenError";
  }
}

export function u64(b: Uint8Array, off: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hi = dv.getUint32(off);
  const lo = dv.getUint32(off + 4);
  if (hi >= 0x200000) return Number.POSITIVE_INFINITY; // beyond 2^53: no valid offset or size
  return hi * 0x100000000 + lo;
}

export function putU64(b: Uint8Array, off: number, v: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(off, Math.floor(v / 0x100000000));
  dv.setUint32(off + 4, v >>> 0);
}

export function u32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off);
}

export function putU32(b: Uint8Array, off: number, v: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(off, v >>> 0);
}

/** Writes a 64-bit feature word from its unsigned 32-bit halves. */
export function putFeatureWord(b: Uint8Array, off: number, lo: number, hi = 0): void {
  putU32(b, off, hi);
  putU32(b, off + 4, lo);
}

/**
 * Parses and validates the fixed header (qcow2_do_open's order of checks). `fileSize` bounds
 * table offsets. Returns the header; throws ImageOpenError with QEMU's message otherwise.
 */
export function parseHeader(b: Uint8Array): Qcow2Header {
  if (b.length < V2_HEADER_LENGTH || u32(b, 0) !== QCOW_MAGIC) throw new ImageOpenError("Image is not in qcow2 format");
  const version = u32(b, 4);
  if (version < 2 || version > 3) throw new ImageOpenError(`Unsupported qcow2 version ${version}`);
  const clusterBits = u32(b, 20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) throw new ImageOpenError(`Unsupported cluster size: 2^${clusterBits}`);
  const h: Qcow2Header = {
    version: version as 2 | 3,
    backingFileOffset: u64(b, 8),
    backingFileSize: u32(b, 16),
    clusterBits,
    size: u64(b, 24),
    cryptMethod: u32(b, 32),
    l1Size: u32(b, 36),
    l1TableOffset: u64(b, 40),
    refcountTableOffset: u64(b, 48),
    refcountTableClusters: u32(b, 56),
    nbSnapshots: u32(b, 60),
    snapshotsOffset: u64(b, 64),
    incompatible: 0,
    compatible: 0,
    autoclear: 0,
    refcountOrder: 4,
    headerLength: V2_HEADER_LENGTH,
    compressionType: 0,
  };
  const cs = 2 ** clusterBits;
  if (version === 3) {
    if (b.length < 104) throw new ImageOpenError("qcow2 header too short");
    // Feature words as two unsigned halves: all 64 bits stay exact (bit 63 exceeds 2^53).
    h.incompatibleHigh = u32(b, 72);
    h.incompatible = u32(b, 76);
    h.compatibleHigh = u32(b, 80);
    h.compatible = u32(b, 84);
    h.autoclearHigh = u32(b, 88);
    h.autoclear = u32(b, 92);
    h.refcountOrder = u32(b, 96);
    h.headerLength = u32(b, 100);
    if (h.headerLength < 104) throw new ImageOpenError("qcow2 header too short");
  }
  if (h.headerLength > cs) throw new ImageOpenError("qcow2 header exceeds cluster size");
  if (h.backingFileOffset > cs) throw new ImageOpenError("Invalid backing file offset");
  if (h.headerLength > 104 && b.length > 104) h.compressionType = b[104];
  if (h.compressionType !== 0 && h.compressionType !== 1) throw new ImageOpenError(`qcow2: unknown compression type: ${h.compressionType}`);
  if (h.compressionType === 0 && h.incompatible & INCOMPAT_COMPRESSION) throw new ImageOpenError("qcow2: Compression type incompatible feature bit must not be set");
  if (h.compressionType !== 0 && !(h.incompatible & INCOMPAT_COMPRESSION)) throw new ImageOpenError("qcow2: Compression type incompatible feature bit must be set");
  if (h.refcountOrder > 6) throw new ImageOpenError("Reference count entry width too large; may not exceed 64 bits");
  if (!Number.isFinite(h.size)) throw new ImageOpenError("Image is too big");
  return h;
}

/** Checks the tables' positions (qcow2_validate_table): QEMU's "<name> too large / offset invalid". */
export function validateTables(h: Qcow2Header, forCheck = false): void {
  const cs = 2 ** h.clusterBits;
  // Tables end within 2^53 bytes, where file offsets are exact numbers. For a check QEMU's own
  // bound (INT64_MAX) applies: such a table then lies past the end of the file, reads as
  // zeros, and the check reports it instead of refusing to look.
  const bound = forCheck ? 2 ** 63 : 2 ** 53;
  const table = (offset: number, entries: number, entryLen: number, max: number, name: string): void => {
    if (entries > Math.floor(max / entryLen)) throw new ImageOpenError(`${name} too large`);
    if (!Number.isFinite(offset) || offset + entries * entryLen > bound || offset % cs !== 0) throw new ImageOpenError(`${name} offset invalid`);
  };
  // qcow2_do_open in check mode (BDRV_O_CHECK) accepts an image without a refcount table and
  // leaves the snapshot table to the check itself.
  if (h.refcountTableClusters === 0 && !forCheck) throw new ImageOpenError("Image does not contain a reference count table");
  table(h.refcountTableOffset, h.refcountTableClusters, cs, QCOW_MAX_REFTABLE_SIZE, "Reference count table");
  if (!forCheck) table(h.snapshotsOffset, h.nbSnapshots, QCOW_SNAPSHOT_HEADER_SIZE, QCOW_SNAPSHOT_HEADER_SIZE * QCOW_MAX_SNAPSHOTS, "Snapshot table");
  table(h.l1TableOffset, h.l1Size, 8, QCOW_MAX_L1_SIZE, "Active L1 table");
  const l2Entries = cs / 8;
  const needed = Math.ceil(h.size / cs / l2Entries);
  if (needed > 0x7fffffff) throw new ImageOpenError("Image is too big");
  if (h.l1Size < needed) throw new ImageOpenError("L1 table is too small");
  if (forCheck) return;
  if (h.l1Size > 0 && h.l1TableOffset === 0) throw new ImageOpenError("Active L1 table offset invalid");
  if (h.refcountTableOffset === 0) throw new ImageOpenError("Reference count table offset invalid");
}

/** Reads the header extensions between the header and `end` (qcow2_read_extensions). */
export function parseExtensions(cluster0: Uint8Array, h: Qcow2Header): Qcow2Extensions {
  const out: Qcow2Extensions = { backingFormat: undefined, featureNames: new Map(), unknown: [], hasBitmaps: false, hasDataFile: false };
  if (h.version < 3) return out; // v2 images may still carry extensions after byte 72
  const end = h.backingFileOffset ? h.backingFileOffset : Math.min(cluster0.length, 2 ** h.clusterBits);
  let off = h.headerLength;
  while (off < end) {
    if (off > end - 8) throw new ImageOpenError("Header extension too large");
    const type = u32(cluster0, off);
    const len = u32(cluster0, off + 4);
    off += 8;
    if (len > end - off) throw new ImageOpenError("Header extension too large");
    const data = cluster0.subarray(off, off + len);
    switch (type) {
      case EXT_END:
        return out;
      case EXT_BACKING_FORMAT:
        if (len >= 16) throw new ImageOpenError(`ERROR: ext_backing_format: len=${len} too large (>=16)`);
        out.backingFormat = new TextDecoder().decode(data);
        break;
      case EXT_FEATURE_TABLE:
        for (let i = 0; i + 48 <= len; i += 48) {
          const raw = data.subarray(i + 2, i + 48);
          const nul = raw.indexOf(0);
          out.featureNames.set(`${data[i]}:${data[i + 1]}`, new TextDecoder().decode(nul < 0 ? raw : raw.subarray(0, nul)));
        }
        break;
      case EXT_BITMAPS:
        out.hasBitmaps = true;
        out.unknown.push({ type, data: data.slice() });
        break;
      case EXT_DATA_FILE:
        out.hasDataFile = true;
        out.unknown.push({ type, data: data.slice() });
        break;
      default:
        out.unknown.push({ type, data: data.slice() });
    }
    off += (len + 7) & ~7;
  }
  return out;
}

/**
 * QEMU's report_unsupported_feature: names from the image's own table when it has them, the
 * rest as one unsigned 64-bit hex mask (`lo`, `hi`: the word's halves).
 */
export function unsupportedFeatures(lo: number, names: Map<string, string>, hi = 0): string {
  const parts: string[] = [];
  let rest = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  for (let bit = 0n; bit < 64n; bit++) {
    if (!((rest >> bit) & 1n)) continue;
    const name = names.get(`0:${bit}`);
    if (name !== undefined) {
      parts.push(name);
      rest &= ~(1n << bit);
    }
  }
  if (rest) parts.push(`Unknown incompatible feature: ${rest.toString(16)}`);
  return `Unsupported qcow2 feature(s): ${parts.join(", ")}`;
}

/**
 * Builds cluster 0's header + extensions + backing name for create and header rewrites
 * (layout as QEMU's qcow2_update_header: header, backing format, feature table, end, name).
 */
export function buildHeader(h: Qcow2Header, opts: { backingFormat?: string; backingFile?: string; unknown?: Array<{ type: number; data: Uint8Array }> }, clusterSize: number): Uint8Array {
  const buf = new Uint8Array(clusterSize);
  const headerLength = h.version === 3 ? V3_HEADER_LENGTH : V2_HEADER_LENGTH;
  putU32(buf, 0, QCOW_MAGIC);
  putU32(buf, 4, h.version);
  putU32(buf, 20, h.clusterBits);
  putU64(buf, 24, h.size);
  putU32(buf, 32, h.cryptMethod);
  putU32(buf, 36, h.l1Size);
  putU64(buf, 40, h.l1TableOffset);
  putU64(buf, 48, h.refcountTableOffset);
  putU32(buf, 56, h.refcountTableClusters);
  putU32(buf, 60, h.nbSnapshots);
  putU64(buf, 64, h.snapshotsOffset);
  if (h.version === 3) {
    putFeatureWord(buf, 72, h.incompatible, h.incompatibleHigh);
    putFeatureWord(buf, 80, h.compatible, h.compatibleHigh);
    putFeatureWord(buf, 88, h.autoclear, h.autoclearHigh);
    putU32(buf, 96, h.refcountOrder);
    putU32(buf, 100, headerLength);
    buf[104] = h.compressionType;
  }
  let off = headerLength;
  const ext = (type: number, data: Uint8Array): void => {
    const padded = (data.length + 7) & ~7;
    if (off + 8 + padded > clusterSize) throw new Error("qcow2 header extensions do not fit in cluster 0");
    putU32(buf, off, type);
    putU32(buf, off + 4, data.length);
    buf.set(data, off + 8);
    off += 8 + padded;
  };
  if (opts.backingFormat) ext(EXT_BACKING_FORMAT, new TextEncoder().encode(opts.backingFormat));
  for (const u of opts.unknown ?? []) ext(u.type, u.data);
  // QEMU writes the feature table only for v3 and when it fits comfortably (cluster > 4 KiB... it
  // skips it for small clusters to leave room for the backing name).
  if (h.version === 3 && clusterSize > 4096) {
    const t = new Uint8Array(48 * FEATURE_NAMES.length);
    FEATURE_NAMES.forEach(([type, bit, name], i) => {
      t[48 * i] = type;
      t[48 * i + 1] = bit;
      t.set(new TextEncoder().encode(name), 48 * i + 2);
    });
    ext(EXT_FEATURE_TABLE, t);
  }
  if (h.version === 3 || opts.backingFormat || (opts.unknown?.length ?? 0) > 0) {
    putU32(buf, off, EXT_END);
    putU32(buf, off + 4, 0);
    off += 8;
  }
  if (opts.backingFile) {
    const name = new TextEncoder().encode(opts.backingFile);
    if (name.length > 1023 || off + name.length > clusterSize) throw new Error("Backing file name too long");
    buf.set(name, off);
    putU64(buf, 8, off);
    putU32(buf, 16, name.length);
    off += name.length;
  }
  return buf.subarray(0, Math.max(off, headerLength));
}

// --- L1/L2 entries (qcow2.txt "Cluster mapping") ---------------------------------------

/** Bits 9-55 of an L1 or standard L2 entry, from its two 32-bit halves. */
export function entryOffset(hi: number, lo: number): number {
  // `>>> 0`: a bitwise and yields a signed 32-bit value, negative from 2 GiB on.
  return (hi & 0x00ffffff) * 0x100000000 + ((lo & 0xfffffe00) >>> 0);
}
export const ENTRY_COPIED_HI = 0x80000000;
export const ENTRY_COMPRESSED_HI = 0x40000000;
export const ENTRY_ZERO_LO = 1;

// --- internal snapshots (qcow2.txt "Snapshots") ----------------------------------------

export interface Qcow2Snapshot {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  vmStateSize: number;
  /** -1 when the entry does not record one (extra data shorter than 24 bytes). */
  icount: number;
}

/** QCOW_MAX_SNAPSHOT_EXTRA_DATA and QCOW_MAX_SNAPSHOTS_SIZE in QEMU. */
export const QCOW_MAX_SNAPSHOT_EXTRA_DATA = 1024;
export const QCOW_MAX_SNAPSHOTS_SIZE = 64 * 1024 * 1024;

/**
 * Parses `nb` snapshot headers (qcow2_read_snapshots) with `read(offset, len)` reading the
 * table; errors use QEMU's words.
 */
export async function readSnapshots(read: (off: number, len: number) => Promise<Uint8Array>, offset: number, nb: number): Promise<Qcow2Snapshot[]> {
  const out: Qcow2Snapshot[] = [];
  let pos = offset;
  const dec = new TextDecoder();
  for (let i = 0; i < nb; i++) {
    if (pos - offset > QCOW_MAX_SNAPSHOTS_SIZE) throw new ImageOpenError("Snapshot table is too big");
    const h = await read(pos, 40);
    const extra = u32(h, 36);
    if (extra > QCOW_MAX_SNAPSHOT_EXTRA_DATA) throw new ImageOpenError("Too much extra metadata in snapshot table entry 1".replace("1", String(i)));
    const idLen = (h[12] << 8) | h[13];
    const nameLen = (h[14] << 8) | h[15];
    const rest = await read(pos + 40, extra + idLen + nameLen);
    const vmClock = u64(h, 24);
    let vmState = u32(h, 32);
    if (extra >= 8) vmState = u64(rest, 0);
    let icount = -1;
    if (extra >= 24) {
      const hi = u32(rest, 16);
      const lo = u32(rest, 20);
      icount = hi === 0xffffffff && lo === 0xffffffff ? -1 : hi * 0x100000000 + lo;
    }
    out.push({
      l1TableOffset: u64(h, 0),
      l1Size: u32(h, 8),
      id: dec.decode(rest.subarray(extra, extra + idLen)),
      name: dec.decode(rest.subarray(extra + idLen, extra + idLen + nameLen)),
      dateSec: u32(h, 16),
      dateNsec: u32(h, 20),
      vmClockNsec: vmClock,
      vmStateSize: vmState,
      icount,
    });
    pos += (40 + extra + idLen + nameLen + 7) & ~7;
  }
  return out;
}

/**
 * A compressed L2 entry's data location (qcow2.txt "Compressed Clusters Descriptor"): with
 * x = 62 - (cluster_bits - 8), bits 0..x-1 are the byte offset and bits x..61 the number of
 * additional 512-byte sectors. Decoded from the 32-bit halves: the whole exceeds 2^53.
 */
export function compressedDescriptor(hi: number, lo: number, clusterBits: number): { offset: number; sectors: number } {
  const x = 62 - (clusterBits - 8);
  return { offset: (hi & ((1 << (x - 32)) - 1)) * 0x100000000 + lo, sectors: ((hi & 0x3fffffff) >>> (x - 32)) + 1 };
}
