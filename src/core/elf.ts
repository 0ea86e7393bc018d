// A minimal ELF32 little-endian RISC-V reader (System V gABI, "ELF header", "Program
// header", "Symbol table"): the PT_LOAD segments to copy into guest memory at their
// physical addresses, as QEMU's load_elf does for -kernel, and the symbol table, for the
// HTIF `tohost`/`fromhost` words.

export interface ElfSegment {
  /** Physical load address (p_paddr). */
  paddr: number;
  /** File bytes (p_filesz); the rest of memsz is zero-filled. */
  data: Uint8Array;
  memsz: number;
}

export interface ElfImage {
  entry: number;
  segments: ElfSegment[];
  /** Lowest load address: QEMU hands this on as the kernel entry (fw_dynamic next_addr). */
  lowAddr: number;
  symbols: Map<string, number>;
}

const EM_RISCV = 243;
const PT_LOAD = 1;
const SHT_SYMTAB = 2;

export function parseElf(bytes: Uint8Array): ElfImage {
  const fail = (what: string) => {
    throw new Error(`not a loadable riscv32 ELF: ${what}`);
  };
  if (bytes.length < 52) fail(`file is ${bytes.length} bytes, shorter than an ELF header`);
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) fail("bad magic at offset 0");
  if (bytes[4] !== 1) fail(`EI_CLASS at offset 4 is ${bytes[4]}, expected 1 (ELFCLASS32)`);
  if (bytes[5] !== 1) fail(`EI_DATA at offset 5 is ${bytes[5]}, expected 1 (little-endian)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) fail(`e_machine at offset 18 is ${machine}, expected ${EM_RISCV} (EM_RISCV)`);
  const entry = dv.getUint32(24, true);
  const phoff = dv.getUint32(28, true);
  const shoff = dv.getUint32(32, true);
  const phentsize = dv.getUint16(42, true);
  const phnum = dv.getUint16(44, true);
  const shentsize = dv.getUint16(46, true);
  const shnum = dv.getUint16(48, true);

  const segments: ElfSegment[] = [];
  let lowAddr = Infinity;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (o + 32 > bytes.length) fail(`program header ${i} at offset ${o} lies beyond the file`);
    if (dv.getUint32(o, true) !== PT_LOAD) continue;
    const offset = dv.getUint32(o + 4, true);
    const paddr = dv.getUint32(o + 12, true);
    const filesz = dv.getUint32(o + 16, true);
    const memsz = dv.getUint32(o + 20, true);
    if (offset + filesz > bytes.length) fail(`segment ${i} data (offset ${offset}, size ${filesz}) lies beyond the file`);
    if (memsz === 0) continue;
    segments.push({ paddr, data: bytes.subarray(offset, offset + filesz), memsz });
    lowAddr = Math.min(lowAddr, paddr);
  }

  const symbols = new Map<string, number>();
  for (let i = 0; i < shnum && shoff !== 0; i++) {
    const o = shoff + i * shentsize;
    if (o + 40 > bytes.length) break;
    if (dv.getUint32(o + 4, true) !== SHT_SYMTAB) continue;
    const symOff = dv.getUint32(o + 16, true);
    const symSize = dv.getUint32(o + 20, true);
    const link = dv.getUint32(o + 24, true);
    const strHdr = shoff + link * shentsize;
    if (strHdr + 40 > bytes.length) break;
    const strOff = dv.getUint32(strHdr + 16, true);
    for (let s = symOff; s + 16 <= symOff + symSize && s + 16 <= bytes.length; s += 16) {
      const nameOff = dv.getUint32(s, true);
      let end = strOff + nameOff;
      while (end < bytes.length && bytes[end] !== 0) end++;
      const name = new TextDecoder().decode(bytes.subarray(strOff + nameOff, end));
      if (name) symbols.set(name, dv.getUint32(s + 4, true));
    }
  }
  return { entry, segments, lowAddr: lowAddr === Infinity ? 0 : lowAddr, symbols };
}
