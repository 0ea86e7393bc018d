// The block compiler's dispatcher and code cache (issue 12 §1). Jit.execute(budget) has the
// interpreter's contract (Cpu.execute): it runs up to `budget` instructions, returns the
// number attempted, and returns early exactly where the interpreter does (trap, SYSTEM
// instruction, MMIO), so interrupts are taken at the same instruction boundaries.
//
// - Lookup: the fetch TLB gives the physical address of pc; a block is keyed by virtual pc,
//   physical pc and the translation regime (privilege, MPRV's data privilege, SUM, MXR),
//   first in a 4096-entry direct-mapped jump cache (QEMU's tb_jmp_cache), then in a Map.
// - Cold code runs on the interpreter for one block's length; a block entered HOT_THRESHOLD
//   times is compiled (region.ts finds its region, codegen.ts writes it, `new Function`).
// - Invalidation: a compiled region's guest page is watched through RAM's write tracking
//   (src/memory/write-tracking.ts): the CPU keeps watched pages out of its write TLB, so
//   every store to them (CPU slow path, A/D update, DMA) reaches onWrite(), which drops the
//   regions whose instructions were overwritten. A store into the running region makes it
//   leave after that store (`rt.stale`), so self-modifying code is exact.
// - The cache is bounded (MAX_REGIONS compiled, MAX_BLOCKS known): when full it is flushed
//   whole, as QEMU's tb_flush and v86's jit_clear_cache do.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { div, divu, mulh, mulhsu, mulhu, rem, remu } from "../arith.js";
import { MSTATUS_MXR, MSTATUS_SUM, TLB_SIZE } from "../constants.js";
import type { Cpu } from "../cpu.js";
import { amoInstruction, loadSlow, storeSlow } from "../memory.js";
import { raiseException } from "../trap.js";
import { generateRegion, type CodegenOptions } from "./codegen.js";
import { decodeAt, discoverRegion, isTerminator, MAX_SEGMENT } from "./region.js";

export type RegionFn = (n: number, budget: number, pc: number, dtag: number) => number;

/**
 * Entries into a block before it is compiled (QEMU compiles at once; v86 waits much longer).
 * A translation costs milliseconds (generating a page's region, V8 parsing it, then running
 * it in V8's bytecode interpreter until V8 optimizes it), the cost of interpreting a few
 * hundred thousand instructions; code that runs only a few thousand times is cheaper left to
 * the interpreter. Linux's boot to its prompt (bench/linux-boot): 3.9 s at 16, 2.3 s at 1024,
 * 1.4 s at 4096; loops get hot within milliseconds either way (bench-core is unchanged).
 */
export const HOT_THRESHOLD = 4096;
/** $MINIVM_JIT_HOT overrides it (1 compiles every block at once: tests use it to cover more code). */
function hotThreshold(): number {
  const v = Number(process.env.MINIVM_JIT_HOT ?? HOT_THRESHOLD);
  return Number.isInteger(v) && v >= 1 ? v : HOT_THRESHOLD;
}
export const MAX_REGIONS = 4096;
export const MAX_BLOCKS = 1 << 16;
/** Generated source kept alive (V8 holds each function's source): flush beyond this. */
export const MAX_SOURCE_BYTES = 64 << 20;
const JC_SIZE = 4096;
/** misa bit 2: the C extension. */
const MISA_C = 1 << 2;
const TLB_MASK = TLB_SIZE - 1;

/** A known block start: cold (interpreted, counted) until it is hot, then compiled. */
interface Block {
  vpc: number;
  /** RAM offset of the instruction. */
  ppc: number;
  regime: number;
  /** Instructions from vpc to the block's end (the interpreter runs this many when cold). */
  len: number;
  hits: number;
  /**
   * Entered at least once where a block really starts: not only right after the interpreter
   * stopped in the middle of straight-line code because the budget ended there (or after a
   * single instruction on a fetch-TLB miss). Only such blocks become labels of a region.
   */
  genuine: boolean;
  /** Hits at which compile() is tried again after it declined (doubles each time). */
  nextTry: number;
  /** The compiled region this block is a label of (its function switches on pc), or null. */
  fn: RegionFn | null;
  region: Region | null;
}

/** One generated function: every label in it is an entry (it starts with `switch (pc)`). */
interface Region {
  fn: RegionFn;
  /** RAM page, and virtual minus RAM offset (the mapping the pc constants assume). */
  page: number;
  delta: number;
  regime: number;
  /** The entries it was compiled for (a recompilation of the page keeps them). */
  entries: number[];
  labels: Set<number>;
  /** Words of the page the region's code covers (bit per 4-byte word). */
  code: Uint32Array;
  /** Blocks that point at fn (dropped together). */
  blocks: Block[];
  source: string | null;
  /** Length of the generated source. */
  size: number;
  /** How many times the page's region was regenerated before this one (the backoff). */
  regenerations: number;
  /** Hot entries not covered by this region, waiting for the next regeneration. */
  waiting: Set<number>;
}

/** What generated code reaches through its `rt` argument. */
export interface Runtime {
  cpu: Cpu;
  exitWord: Int32Array;
  /** Set when a write dropped a translation: the running region leaves at once. */
  stale: boolean;
  /** Set by a region that stopped where the interpreter would return: 1 a trap, 2 a device access. */
  stop: number;
  loadSlow: typeof loadSlow;
  storeSlow: typeof storeSlow;
  amo: typeof amoInstruction;
  raise: typeof raiseException;
  mulh: typeof mulh;
  mulhsu: typeof mulhsu;
  mulhu: typeof mulhu;
  div: typeof div;
  divu: typeof divu;
  rem: typeof rem;
  remu: typeof remu;
}

export interface JitStats {
  compiled: number;
  invalidated: number;
  flushes: number;
  regions: number;
  blocks: number;
  /** Instructions run by compiled code and by the interpreter under this engine. */
  jitInsns: number;
  interpInsns: number;
}

export class Jit {
  readonly rt: Runtime;
  private readonly jc: (Block | null)[] = new Array<Block | null>(JC_SIZE).fill(null);
  private readonly blocks = new Map<number, Block>();
  /** Compiled regions by RAM page. */
  private readonly pages = new Map<number, Region[]>();
  private regionCount = 0;
  private sourceBytes = 0;
  private opts: Omit<CodegenOptions, "ialignMask"> = { fastMemory: true, exitCheck: true };
  readonly stats: JitStats = { compiled: 0, invalidated: 0, flushes: 0, regions: 0, blocks: 0, jitInsns: 0, interpInsns: 0 };
  /** Keep each region's source (for docs, `--accel check` reports and tests). */
  keepSource = false;
  hot = hotThreshold();
  /** $MINIVM_JIT_DUMP: a directory that receives every generated region as region_<pc>.js. */
  private readonly dumpDir = process.env.MINIVM_JIT_DUMP ?? "";
  /**
   * Wraps every translation (the board pauses the guest clock around it, so that a pause of
   * the host thread to generate and parse code is not seen by the guest as a slow interrupt).
   */
  translationHook: ((translate: () => void) => void) | null = null;
  /** A pc the interpreter stopped at mid-block (see Block.genuine), or -1 (never a pc: odd). */
  private cutPc = -1;
  /** Compiled regions kept before the cache is flushed (tests lower it). */
  maxRegions = MAX_REGIONS;
  /** `--accel check` (check.ts) runs every compiled region through this instead of calling it. */
  protected checker: ((fn: RegionFn, n: number, budget: number, pc: number, dtag: number) => number) | null = null;

  constructor(readonly cpu: Cpu, exitWord: Int32Array | null) {
    this.rt = {
      cpu,
      exitWord: exitWord ?? new Int32Array(new SharedArrayBuffer(4)),
      stale: false,
      stop: 0,
      loadSlow, storeSlow, amo: amoInstruction, raise: raiseException,
      mulh, mulhsu, mulhu, div, divu, rem, remu,
    };
    cpu.tracking.setListener((page, off, len) => this.onWrite(page, off, len));
  }

  /**
   * Inline RAM fast paths in compiled code (default) or route every access through the
   * interpreter's memory functions (memory.ts), e.g. while postcopy has pages missing.
   */
  setFastMemory(on: boolean): void {
    if (this.opts.fastMemory === on) return;
    this.opts = { ...this.opts, fastMemory: on };
    this.flush();
  }

  /** Forget every translation (reset, loadvm/migration, a full cache). */
  flush(): void {
    this.jc.fill(null);
    this.blocks.clear();
    for (const page of this.pages.keys()) this.cpu.tracking.unwatch(page);
    this.pages.clear();
    this.regionCount = 0;
    this.sourceBytes = 0;
    this.stats.flushes++;
    this.rt.stale = true;
  }

  /** RAM [off, off+len) on watched page `page` was written: drop the regions it overwrote. */
  private onWrite(page: number, off: number, len: number): void {
    const list = this.pages.get(page);
    if (list === undefined) return;
    const w0 = (off & 0xfff) >>> 2;
    const w1 = ((off + len - 1) & 0xfff) >>> 2;
    let kept = 0;
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      let hit = false;
      for (let w = w0; w <= w1 && !hit; w++) hit = (r.code[w >>> 5] & (1 << (w & 31))) !== 0;
      if (hit) {
        this.drop(r);
        this.stats.invalidated++;
        this.rt.stale = true;
      } else {
        list[kept++] = r;
      }
    }
    list.length = kept;
    if (kept === 0) {
      this.pages.delete(page);
      this.cpu.tracking.unwatch(page);
    }
  }

  /** Make a region's blocks cold again (the caller removes it from its page's list). */
  private drop(r: Region): void {
    for (const b of r.blocks) {
      b.fn = null;
      b.region = null;
      b.hits = 0;
      b.nextTry = 0;
    }
    r.blocks.length = 0;
    this.regionCount--;
    this.sourceBytes -= r.size;
  }

  /** What compiled code depends on besides the bytes: privileges, SUM/MXR, and misa.C (jump alignment). */
  private regime(): number {
    const cpu = this.cpu;
    return cpu.priv | (cpu.dataPriv() << 2) | (cpu.mstatus & (MSTATUS_SUM | MSTATUS_MXR)) | ((cpu.misa & MISA_C) << 2);
  }

  /** Run up to `budget` instructions (Cpu.execute's contract). */
  execute(budget: number): number {
    const cpu = this.cpu;
    const rt = this.rt;
    const xTag = cpu.tlbXTag;
    const xOff = cpu.tlbXOff;
    const ftag = cpu.priv << 20;
    const dtag = cpu.dataPriv() << 20;
    const regime = this.regime();
    const jc = this.jc;
    let n = 0;
    rt.stale = false;
    const exitWord = rt.exitWord;
    while (n < budget) {
      // The exit request (QMP, the main loop wanting the BQL) ends the slice at a block boundary.
      if (exitWord[0] !== 0) return n;
      const pc = cpu.pc;
      const vpn = pc >>> 12;
      const ti = vpn & TLB_MASK;
      if (xTag[ti] !== (vpn | ftag) || (pc & 1) !== 0) {
        // A fetch TLB miss, ROM, or an odd pc: the interpreter fetches (and faults) itself.
        const k = cpu.execute(1);
        n += k;
        this.stats.interpInsns += k;
        if (cpu.stoppedEarly) return n;
        if (cpu.pc === ((pc + 4) | 0) || cpu.pc === ((pc + 2) | 0)) this.cutPc = cpu.pc;
        continue;
      }
      const ppc = xOff[ti] + (pc & 0xfff);
      const j = (pc >>> 1) & (JC_SIZE - 1);
      let b = jc[j];
      if (b === null || b.vpc !== pc || b.ppc !== ppc || b.regime !== regime) {
        b = this.lookup(pc, ppc, regime);
        jc[j] = b;
      }
      const fn = b.fn;
      if (fn !== null) {
        const n0 = n;
        n = this.checker === null ? fn(n, budget, pc, dtag) : this.checker(fn, n, budget, pc, dtag);
        this.stats.jitInsns += n - n0;
        if (rt.stop !== 0) {
          // 1: a trap; 2: a device access, which the interpreter acknowledges by clearing
          // mmioTouched (after a trap it leaves the flag as it was, and so does this).
          if (rt.stop === 2) cpu.mmioTouched = false;
          rt.stop = 0;
          return n;
        }
        rt.stale = false;
        if (n !== n0) continue;
        // No progress: the exit word is set, or the next block does not fit in the budget.
        // Returning early is allowed (the board polls and takes interrupts sooner); only
        // when nothing ran at all does the interpreter finish the budget.
        if (n > 0 || exitWord[0] !== 0) return n;
        const k = cpu.execute(budget - n);
        n += k;
        this.stats.interpInsns += k;
        if (cpu.stoppedEarly) return n;
        continue;
      }
      if (pc !== this.cutPc) b.genuine = true;
      this.cutPc = -1;
      // compile() may decline (the block lies inside compiled code, or the page's region is
      // backing off): it is asked again at twice the hits, not on every visit.
      if (++b.hits >= this.hot && b.hits >= b.nextTry && b.len > 0) {
        b.nextTry = b.hits * 2;
        if (this.translationHook === null) this.compile(b);
        else this.translationHook(() => this.compile(b));
      }
      if (b.fn !== null) continue;
      const want = b.len > 0 ? b.len : 1;
      const take = want < budget - n ? want : budget - n;
      const k = cpu.execute(take);
      n += k;
      this.stats.interpInsns += k;
      if (cpu.stoppedEarly) return n;
      // The budget ended inside the block: the next visit starts mid-block.
      if (take < want) this.cutPc = cpu.pc;
    }
    return n;
  }

  private lookup(pc: number, ppc: number, regime: number): Block {
    const old = this.blocks.get(pc);
    if (old !== undefined && old.ppc === ppc && old.regime === regime) return old;
    if (this.blocks.size >= MAX_BLOCKS) this.flush();
    const b: Block = { vpc: pc, ppc, regime, len: this.blockLength(ppc, (regime & (MISA_C << 2)) !== 0), hits: 0, genuine: false, nextTry: 0, fn: null, region: null };
    if (old !== undefined && old.region !== null) {
      const blocks = old.region.blocks;
      blocks.splice(blocks.indexOf(old), 1);
    }
    this.blocks.set(pc, b);
    // A label of a region already compiled for this page and mapping needs no new code.
    const list = this.pages.get(ppc >>> 12);
    if (list !== undefined) {
      for (const r of list) {
        if (r.regime === regime && r.delta === pc - ppc && r.labels.has(pc)) {
          this.attach(b, r);
          break;
        }
      }
    }
    return b;
  }

  private attach(b: Block, r: Region): void {
    b.fn = r.fn;
    b.region = r;
    r.blocks.push(b);
  }

  /** Straight-line length from `ppc`, in instructions (0 when its first is not translatable). */
  private blockLength(ppc: number, rvc: boolean): number {
    const ram16 = this.cpu.ram16;
    const half = (off: number) => ram16[off >>> 1];
    const pageEnd = (ppc | 0xfff) + 1;
    let len = 0;
    for (let off = ppc; off < pageEnd && len < MAX_SEGMENT; ) {
      const d = decodeAt(off, half, rvc);
      if (d === null) return len;
      len++;
      if (isTerminator(d.inst) || (d.inst & 0x7f) === 0x0f) return len;
      off += d.len;
    }
    return len;
  }

  private compile(b: Block): void {
    if (this.regionCount >= this.maxRegions || this.sourceBytes >= MAX_SOURCE_BYTES) {
      this.flush();
      this.blocks.set(b.vpc, b);
    }
    const ram16 = this.cpu.ram16;
    const delta = b.vpc - b.ppc;
    const half = (pc: number) => ram16[((pc - delta) | 0) >>> 1];
    const rvc = (b.regime & (MISA_C << 2)) !== 0;
    const page = b.ppc >>> 12;
    const list = this.pages.get(page) ?? [];
    const same = list.filter((r) => r.delta === delta && r.regime === b.regime);
    const w = (b.ppc & 0xfff) >>> 2;
    if (same.some((r) => (r.code[w >>> 5] & (1 << (w & 31))) !== 0) && b.hits < this.hot * 64) {
      // Inside a block of a region (reached by an indirect jump from elsewhere, say): that
      // code is compiled already; only a much hotter entry earns a region of its own.
      return;
    }
    // One region per page and mapping where it fits: a new entry replaces the page's region
    // with one that holds the old entries too (v86 compiles whole pages for the same reason).
    let old: Region | undefined = same[same.length - 1];
    if (old !== undefined) {
      // Each regeneration costs a translation and V8's warm-up of the new function (it starts
      // in V8's bytecode interpreter, slower than minivm's own), so the page's region is
      // regenerated with exponential backoff: after its k-th regeneration, once 2^k new entries
      // are waiting or one of them has been entered hot * 2^k times. Until then they are
      // interpreted (Linux's boot translated 14 MB of source in 400 rounds without this).
      old.waiting.add(b.vpc);
      const k = Math.min(old.regenerations, 12);
      if (old.waiting.size < 1 << k && b.hits < this.hot << k) return;
    }
    let entries = [b.vpc, ...(old?.entries ?? [])];
    if (old !== undefined) {
      // Regenerating: take every other block the dispatcher has entered on this page (with
      // this mapping) as an entry too, so that the next ones to get hot are covered already
      // instead of each regenerating the page again (the SBI's trap page had 30 rounds).
      const known = new Set(entries);
      const entered: Block[] = [];
      for (const o of this.blocks.values()) {
        if (o.genuine && o.region === null && o.regime === b.regime && o.ppc >>> 12 === page && o.vpc - o.ppc === delta && !known.has(o.vpc)) entered.push(o);
      }
      entered.sort((x, y) => y.hits - x.hits);
      for (const o of entered) entries.push(o.vpc);
    }
    // Only code that has run becomes part of the region (a label is a block the dispatcher
    // has entered with this mapping and regime).
    const seen = (pc: number) => {
      const o = this.blocks.get(pc);
      return o !== undefined && o.genuine && o.ppc === ((pc - delta) | 0) && o.regime === b.regime;
    };
    let region = discoverRegion(entries, half, rvc, seen);
    if (region !== null && old !== undefined && !old.entries.every((e) => region?.words.has(e))) {
      // The page holds more code than one function should: a region of its own.
      old = undefined;
      entries = [b.vpc];
      region = discoverRegion(entries, half, rvc, seen);
    }
    if (region === null) {
      b.len = 0;
      return;
    }
    if (old !== undefined) {
      list.splice(list.indexOf(old), 1);
      this.drop(old);
    }
    const source = generateRegion(region, { ...this.opts, ialignMask: rvc ? 1 : 3, comments: this.keepSource || this.dumpDir !== "" });
    const factory = new Function("rt", source) as (rt: Runtime) => RegionFn;
    if (this.dumpDir !== "") writeFileSync(join(this.dumpDir, `region_${(b.vpc >>> 0).toString(16)}.js`), source);
    const code = new Uint32Array(32);
    for (const [pc, len] of region.lengths) {
      // A 32-bit instruction at pc % 4 == 2 covers two words.
      for (let w = (pc & 0xfff) >>> 2; w <= ((pc + len - 1) & 0xfff) >>> 2; w++) code[w >>> 5] |= 1 << (w & 31);
    }
    const r: Region = {
      fn: factory(this.rt),
      entries,
      page,
      delta,
      regime: b.regime,
      labels: new Set(region.labels.filter((l) => region.words.has(l))),
      code,
      blocks: [],
      source: this.keepSource ? source : null,
      size: source.length,
      regenerations: old !== undefined ? old.regenerations + 1 : 0,
      waiting: new Set(),
    };
    this.attach(b, r);
    // Other known blocks that are labels of the new region use it at once.
    for (const l of r.labels) {
      const o = this.blocks.get(l);
      if (o !== undefined && o !== b && o.region === null && o.ppc === ((l - delta) | 0) && o.regime === b.regime) this.attach(o, r);
    }
    if (!this.pages.has(page)) {
      this.pages.set(page, list);
      // Watching drops the page from the write TLB: from now on its stores reach onWrite().
      this.cpu.tracking.watch(page);
    }
    list.push(r);
    this.regionCount++;
    this.sourceBytes += source.length;
    this.stats.compiled++;
  }

  /** The generated source of the region entered at virtual `pc` (keepSource must be on). */
  sourceAt(pc: number): string | null {
    return this.blocks.get(pc | 0)?.region?.source ?? null;
  }

  /** Current cache occupancy (for `info jit`-style reporting and the bench). */
  snapshotStats(): JitStats {
    return { ...this.stats, regions: this.regionCount, blocks: this.blocks.size };
  }
}
