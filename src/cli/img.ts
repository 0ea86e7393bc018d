// `minivm img`: qemu-img's create, info, check, convert, compare, map and bench, with
// qemu-img's option letters, output texts and exit codes (qemu-img.c, QEMU 7.2).

import { splitKeyValues } from "../block/backend.js";
import { createImage, formattingLine, parseSize, type CreateOptions } from "../block/create.js";
import type { BlockDriver } from "../block/driver.js";
import { openImage } from "../block/image.js";
import { checkExitCode, checkJson, humanCheck, humanInfo, imageInfo } from "../block/info.js";
import { IoPool } from "../block/io-pool.js";
import { checkQcow2, type CheckResult } from "../block/qcow2-check.js";
import { Qcow2Driver } from "../block/qcow2.js";
import { bench, compareImages, convertImage, mapImage } from "../block/tools.js";

export interface ImgIo {
  out(s: string): void;
  err(s: string): void;
}

const processIo: ImgIo = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

class UsageError extends Error {}

interface Parsed {
  opts: Map<string, string[]>;
  args: string[];
}

/** getopt_long as qemu-img uses it: `spec` lists short letters ("f:" takes a value) and long names. */
function getopt(argv: string[], short: string, long: string[]): Parsed {
  const opts = new Map<string, string[]>();
  const args: string[] = [];
  const add = (k: string, v: string): void => void opts.set(k, [...(opts.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = long.find((l) => l.replace(/:$/, "") === name);
      if (!spec) throw new UsageError(`unrecognized option '${a}'`);
      if (spec.endsWith(":")) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`option '${a}' requires an argument`);
        add(name, v);
      } else add(name, "");
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j];
        const k = short.indexOf(c);
        if (k < 0 || c === ":") throw new UsageError(`invalid option -- '${c}'`);
        if (short[k + 1] === ":") {
          const v = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
          if (v === undefined) throw new UsageError(`option requires an argument -- '${c}'`);
          add(c, v);
          break;
        }
        add(c, "");
      }
      continue;
    }
    args.push(a);
  }
  return { opts, args };
}

const last = (p: Parsed, k: string): string | undefined => p.opts.get(k)?.at(-1);
const has = (p: Parsed, k: string): boolean => p.opts.has(k);

/** `-o a=b,c=d` (commas doubled to escape them, as QemuOpts). */
function parseOpts(list: string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const s of list ?? []) for (const [k, v] of splitKeyValues(s)) m.set(k, v);
  return m;
}

function onOff(v: string | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (["on", "yes", "true"].includes(v)) return true;
  if (["off", "no", "false"].includes(v)) return false;
  throw new Error(`Parameter '${name}' expects 'on' or 'off'`);
}

function outputFormat(p: Parsed): "human" | "json" {
  const f = last(p, "output") ?? "human";
  if (f !== "human" && f !== "json") throw new Error("--output must be used with human or json as argument.");
  return f;
}

function num(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`Invalid ${name} specified`);
  return n;
}

async function create(argv: string[], io: ImgIo, pool: IoPool): Promise<number> {
  const p = getopt(argv, "F:b:f:ho:qu", ["object:"]);
  const o = parseOpts(p.opts.get("o"));
  const [filename, sizeArg] = p.args;
  if (!filename) throw new UsageError("Expecting image file name");
  const format = (last(p, "f") ?? "raw") as "raw" | "qcow2";
  if (format !== "raw" && format !== "qcow2") throw new Error(`Unknown file format '${format}'`);
  const copts: CreateOptions = {
    filename,
    format,
    pool,
    size: sizeArg !== undefined ? parseSize(sizeArg) : o.has("size") ? parseSize(o.get("size")!) : undefined,
    clusterSize: o.has("cluster_size") ? parseSize(o.get("cluster_size")!) : undefined,
    compat: o.get("compat") as CreateOptions["compat"],
    backingFile: last(p, "b") ?? o.get("backing_file"),
    backingFormat: last(p, "F") ?? o.get("backing_fmt"),
    lazyRefcounts: onOff(o.get("lazy_refcounts"), "lazy_refcounts"),
    refcountBits: o.has("refcount_bits") ? Number(o.get("refcount_bits")) : undefined,
  };
  for (const k of o.keys()) {
    if (!["size", "cluster_size", "compat", "backing_file", "backing_fmt", "lazy_refcounts", "refcount_bits", "compression_type", "extended_l2", "preallocation"].includes(k)) {
      throw new Error(`Invalid parameter '${k}'`);
    }
  }
  const prealloc = o.get("preallocation");
  if (prealloc !== undefined && prealloc !== "off") throw new Error(`Unsupported preallocation mode '${prealloc}' (minivm creates sparse images only)`);
  const ctype = o.get("compression_type");
  if (ctype !== undefined && ctype !== "zlib") throw new Error(ctype === "zstd" ? "minivm supports only zlib compression" : `Invalid parameter '${ctype}'`);
  if (onOff(o.get("extended_l2"), "extended_l2")) throw new Error("minivm does not support extended L2 entries");
  if (format === "raw" && (copts.backingFile || copts.clusterSize)) throw new Error(`Invalid parameter '${copts.backingFile ? "backing_file" : "cluster_size"}'`);
  if (copts.size === undefined && !copts.backingFile) throw new UsageError("Expecting image size");
  const { resolveCreateOptions } = await import("../block/create.js");
  const resolved = await resolveCreateOptions(copts);
  if (!has(p, "q")) io.out(formattingLine(resolved, resolved.size) + "\n");
  await createImage(resolved);
  return 0;
}

/**
 * Opens as qemu-img does: with the image locks of a reader (or writer), so an image a VM is
 * using is refused; -U/--force-share takes them shared, and only for reading.
 */
async function open(filename: string, pool: IoPool, format: string | undefined, readOnly = true, forCheck = false, forceShare = false, noIo = false): Promise<BlockDriver> {
  if (forceShare && !readOnly) throw new Error("force-share=on can only be used with read-only images");
  try {
    return await openImage(filename, { pool, format, readOnly, forCheck, forceShare, noIo });
  } catch (e) {
    // qemu-img's img_open_file: every open failure is reported as "Could not open 'FILE': ...".
    throw new Error(`Could not open '${filename}': ${e instanceof Error ? e.message : String(e)}`);
  }
}

function forceShare(p: Parsed): boolean {
  return has(p, "U") || has(p, "force-share");
}

async function info(argv: string[], io: ImgIo, pool: IoPool): Promise<number> {
  const p = getopt(argv, "f:hU", ["output:", "backing-chain", "force-share", "image-opts", "object:"]);
  const filename = p.args[0];
  if (!filename) throw new UsageError("Expecting one image file name");
  const fmt = outputFormat(p);
  const d = await open(filename, pool, last(p, "f"), true, false, forceShare(p), true);
  try {
    const chain: BlockDriver[] = [];
    for (let x: BlockDriver | null = d; x && (chain.length === 0 || has(p, "backing-chain")); x = x.backing) chain.push(x);
    const infos = await Promise.all(chain.map((x, i) => imageInfo(x, i === 0 ? filename : x.filename)));
    if (fmt === "json") io.out(JSON.stringify(has(p, "backing-chain") ? infos : infos[0], null, 4) + "\n");
    else io.out(infos.map(humanInfo).join("\n"));
  } finally {
    await d.close();
  }
  return 0;
}

async function check(argv: string[], io: ImgIo, pool: IoPool): Promise<number> {
  const p = getopt(argv, "f:hqr:T:U", ["output:", "repair:", "force-share", "image-opts", "object:"]);
  const filename = p.args[0];
  if (!filename) throw new UsageError("Expecting one image file name");
  const fmt = outputFormat(p);
  const r = last(p, "r") ?? last(p, "repair");
  if (r !== undefined && r !== "leaks" && r !== "all") throw new Error(`Unknown option value for -r (expecting 'leaks' or 'all'): ${r}`);
  const quiet = has(p, "q");
  const d = await open(filename, pool, last(p, "f"), r === undefined, true, forceShare(p));
  try {
    if (!(d instanceof Qcow2Driver)) {
      if (fmt === "json") io.out(JSON.stringify({ filename, format: d.format, "check-errors": 0 }, null, 4) + "\n");
      else io.err(`minivm img: This image format does not support checks\n`);
      return 63;
    }
    const res: CheckResult = await checkQcow2(d, { repair: r });
    for (const m of res.messages) io.err(m + "\n");
    if (res.failed !== undefined) {
      io.err(`minivm img: Check failed: ${res.failed}\n`);
      return 1;
    }
    if (res.checkErrors) io.err("minivm img: Check failed\n");
    if (fmt === "json") io.out(JSON.stringify(checkJson(filename, "qcow2", res), null, 4) + "\n");
    else if (!quiet) {
      if (r && (res.leaksFixed || res.corruptionsFixed)) {
        io.out(`The following inconsistencies were found and repaired:\n\n    ${res.leaksFixed} leaked clusters\n    ${res.corruptionsFixed} corruptions\n\nDouble checking the fixed image now...\n`);
      }
      io.out(humanCheck(res));
    }
    return checkExitCode(res);
  } finally {
    await d.close();
  }
}

async function convert(argv: string[], io: ImgIo, pool: IoPool): Promise<number> {
  const p = getopt(argv, "hf:O:B:Cco:l:S:pt:T:qnm:WrU", ["object:", "image-opts", "target-image-opts", "force-share", "salvage", "target-is-zero"]);
  if (p.args.length < 2) throw new UsageError("Expecting image file name");
  const out = p.args[p.args.length - 1];
  const inputs = p.args.slice(0, -1);
  if (inputs.length !== 1) throw new Error("minivm img convert takes exactly one source image");
  const outFmt = (last(p, "O") ?? "raw") as "raw" | "qcow2";
  const o = parseOpts(p.opts.get("o"));
  const src = await open(inputs[0], pool, last(p, "f"), true, false, forceShare(p));
  try {
    if (!has(p, "n")) {
      await createImage({
        filename: out,
        format: outFmt,
        size: src.size,
        pool,
        clusterSize: o.has("cluster_size") ? parseSize(o.get("cluster_size")!) : undefined,
        compat: o.get("compat") as CreateOptions["compat"],
        lazyRefcounts: onOff(o.get("lazy_refcounts"), "lazy_refcounts"),
        backingFile: last(p, "B") ?? o.get("backing_file"),
        backingFormat: o.get("backing_fmt") ?? last(p, "F"),
      });
    }
    const dst = await openImage(out, { pool, format: outFmt });
    try {
      let shown = -1;
      const showProgress = has(p, "p") && !has(p, "q");
      if (has(p, "c") && !(dst instanceof Qcow2Driver)) throw new Error("Compression not supported for this file format");
      await convertImage(
        src,
        dst,
        (pct) => {
          if (!showProgress) return;
          if (Math.floor(pct) === shown && pct !== 100) return;
          shown = Math.floor(pct);
          io.out(`    (${pct.toFixed(2)}/100%)\r`);
        },
        has(p, "c") && dst instanceof Qcow2Driver ? dst : undefined,
      );
      if (showProgress) io.out(`    (100.00/100%)\r\n`);
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
  return 0;
}

async function compare(argv: string[], io: ImgIo, pool: IoPool): Promise<number> {
  const p = getopt(argv, "hf:F:T:pqsU", ["object:", "image-opts", "force-share"]);
  if (p.args.length !== 2) throw new UsageError("Expecting two image file names");
  let a: BlockDriver;
  let b: BlockDriver;
  try {
    a = await open(p.args[0], pool, last(p, "f"), true, false, forceShare(p));
  } catch (e) {
    io.err(`minivm img: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    b = await open(p.args[1], pool, last(p, "F") ?? last(p, "f"), true, false, forceShare(p));
  } catch (e) {
    await a.close();
    io.err(`minivm img: ${(e as Error).message}\n`);
    return 2;
  }
  const quiet = has(p, "q");
  try {
    const r = await compareImages(a, b, has(p, "s"));
    if ("sizeMismatch" in r) {
      if (!quiet) io.out("Strict mode: Image size mismatch!\n");
      return 1;
    }
    if ("statusMismatch" in r) {
      if (!quiet) io.out(`Strict mode: Offset ${r.statusMismatch} block status mismatch!\n`);
      return 1;
    }
    if (r.warning && !quiet) io.out(r.warning + "\n");
    if (r.identical) {
      if (!quiet) io.out("Images are identical.\n");
      return 0;
    }
    if (!quiet) io.out(`Content mismatch at offset ${r.offset}!\n`);
    return 1;
  } catch (e) {
    io.err(`minivm img: ${(e as Error).message}\n`);
    return 4;
  } finally {
    // Both images are released even when the first close fails.
    try {
      await a.close();
    } finally {
      await b.close();
    }
  }
}

async function map(argv: string[], io: ImgIo, pool: IoPool): Promise<number> {
  const p = getopt(argv, "f:hs:l:U", ["output:", "start-offset:", "max-length:", "image-opts", "object:", "force-share"]);
  const filename = p.args[0];
  if (!filename) throw new UsageError("Expecting one image file name");
  const fmt = outputFormat(p);
  const d = await open(filename, pool, last(p, "f"), true, false, forceShare(p));
  try {
    const start = last(p, "start-offset") ? parseSize(last(p, "start-offset")!) : 0;
    const extents = await mapImage(d, start, last(p, "max-length") ? parseSize(last(p, "max-length")!) : d.size - start);
    if (fmt === "json") {
      const lines = extents.map(
        (e) =>
          `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}` +
          (e.offset !== undefined ? `, "offset": ${e.offset}` : "") +
          "}",
      );
      io.out("[" + lines.join(",\n") + "]\n");
    } else {
      const hex = (n: number): string => (n === 0 ? "0" : "0x" + n.toString(16)).padEnd(16);
      io.out("Offset          Length          Mapped to       File\n");
      const files: string[] = [];
      for (let x: BlockDriver | null = d; x; x = x.backing) files.push(x === d ? filename : x.filename);
      for (const e of extents) if (e.data && e.offset !== undefined) io.out(`${hex(e.start)}${hex(e.length)}${hex(e.offset)}${files[e.depth]}\n`);
    }
  } finally {
    await d.close();
  }
  return 0;
}

async function benchCmd(argv: string[], io: ImgIo, pool: IoPool): Promise<number> {
  const p = getopt(argv, "hc:d:f:ni:o:qs:S:t:wU", ["flush-interval:", "image-opts", "pattern:", "no-drain", "force-share"]);
  const filename = p.args[0];
  if (!filename) throw new UsageError("Expecting one image file name");
  const write = has(p, "w");
  const bufSize = last(p, "s") ? parseSize(last(p, "s")!) : 4096;
  const o = {
    count: num(last(p, "c"), "request count", 75000, 1),
    depth: num(last(p, "d"), "queue depth", 64, 1),
    bufSize,
    step: last(p, "S") ? parseSize(last(p, "S")!) : bufSize,
    offset: last(p, "o") ? parseSize(last(p, "o")!) : 0,
    write,
    pattern: num(last(p, "pattern"), "pattern byte", 0),
    flushInterval: num(last(p, "flush-interval"), "flush interval", 0),
    drain: !has(p, "no-drain"),
  };
  if (o.flushInterval && !write) throw new Error("--flush-interval is only available in write tests");
  if (o.flushInterval && o.flushInterval < o.depth) throw new Error("Flush interval can't be smaller than depth");
  const d = await open(filename, pool, last(p, "f"), !write, false, forceShare(p));
  try {
    if (!has(p, "q")) io.out(`Sending ${o.count} ${write ? "write" : "read"} requests, ${o.bufSize} bytes each, ${o.depth} in parallel (starting at offset ${o.offset}, step size ${o.step})\n`);
    const secs = await bench(d, o);
    if (!has(p, "q")) io.out(`Run completed in ${secs.toFixed(3)} seconds.\n`);
  } finally {
    await d.close();
  }
  return 0;
}

const COMMANDS: Record<string, (argv: string[], io: ImgIo, pool: IoPool) => Promise<number>> = {
  create,
  info,
  check,
  convert,
  compare,
  map,
  bench: benchCmd,
};

const USAGE = `usage: minivm img <command> [options]  (options and output as qemu-img 7.2)

  create [-q] [-f fmt] [-b backing_file -F backing_fmt] [-o options] filename [size]
         options: cluster_size, compat=0.10|1.1, backing_file, backing_fmt, lazy_refcounts, refcount_bits
  info [-f fmt] [--output=human|json] [--backing-chain] filename
  check [-q] [-f fmt] [--output=human|json] [-r leaks|all] filename
  convert [-c] [-p] [-q] [-n] [-f fmt] [-O output_fmt] [-B backing_file] [-o options] filename output_filename
  compare [-q] [-s] [-f fmt] [-F fmt] filename1 filename2
  map [-f fmt] [--output=human|json] [--start-offset=N] [--max-length=N] filename
  bench [-c count] [-d depth] [-f fmt] [-o offset] [-s buffer_size] [-S step] [-w] [--pattern=N]
        [--flush-interval=N] [--no-drain] [-q] filename   (-t, -i, -n are accepted and ignored)
`;

/** Runs one `minivm img` command with output going to `io`; returns the exit status. */
export async function imgRun(argv: string[], io: ImgIo, pool?: IoPool): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === "--help" || cmd === "-h" || cmd === "help") {
    io.out(USAGE);
    return 0;
  }
  const fn = cmd ? COMMANDS[cmd] : undefined;
  if (!fn) {
    io.err(cmd ? `minivm img: Command not found: ${cmd}\n` : USAGE);
    return 1;
  }
  const own = pool ?? new IoPool();
  try {
    return await fn(rest, io, own);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    io.err(`minivm img: ${msg}\n`);
    if (e instanceof UsageError) io.err("Try 'minivm img --help' for more information\n");
    return 1;
  } finally {
    if (!pool) await own.close();
  }
}

export async function imgMain(argv: string[]): Promise<number> {
  return imgRun(argv, processIo);
}
