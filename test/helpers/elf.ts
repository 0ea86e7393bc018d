// A minimal RV32 ELF built in memory, so tests need no cross toolchain for a trivial guest.
import { writeFileSync } from "node:fs";

/** An ELF32 executable with one PT_LOAD segment holding `words` at `addr`. */
export function tinyElf(words: number[], addr = 0x80000000): Uint8Array {
  const code = new Uint8Array(words.length * 4);
  const cv = new DataView(code.buffer);
  words.forEach((w, i) => cv.setUint32(i * 4, w >>> 0, true));
  const ehsize = 52;
  const phsize = 32;
  const buf = new Uint8Array(ehsize + phsize + code.length);
  const v = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0); // ELF, 32-bit, little-endian, version 1
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 243, true); // EM_RISCV
  v.setUint32(20, 1, true);
  v.setUint32(24, addr, true); // e_entry
  v.setUint32(28, ehsize, true); // e_phoff
  v.setUint16(40, ehsize, true);
  v.setUint16(42, phsize, true);
  v.setUint16(44, 1, true); // e_phnum
  v.setUint16(46, 40, true); // e_shentsize
  v.setUint32(ehsize + 0, 1, true); // PT_LOAD
  v.setUint32(ehsize + 4, ehsize + phsize, true); // p_offset
  v.setUint32(ehsize + 8, addr, true); // p_vaddr
  v.setUint32(ehsize + 12, addr, true); // p_paddr
  v.setUint32(ehsize + 16, code.length, true); // p_filesz
  v.setUint32(ehsize + 20, code.length, true); // p_memsz
  v.setUint32(ehsize + 24, 5, true); // R+X
  v.setUint32(ehsize + 28, 4, true);
  buf.set(code, ehsize + phsize);
  return buf;
}

/** `wfi; j -4`: a guest that sleeps forever, waking only to sleep again. */
export const IDLE_LOOP = [0x10500073, 0xffdff06f];

export function writeTinyElf(path: string, words: number[]): string {
  writeFileSync(path, tinyElf(words));
  return path;
}
