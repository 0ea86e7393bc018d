// Writes a minimal ELF32 RISC-V executable (one PT_LOAD per segment, no sections), enough
// for QEMU's -kernel loader and minivm's parseElf.

export interface Segment {
  addr: number;
  bytes: Uint8Array;
}

export function writeElf(segments: Segment[], entry: number): Uint8Array {
  const ehsize = 52;
  const phentsize = 32;
  let offset = ehsize + phentsize * segments.length;
  offset = (offset + 15) & ~15;
  const offsets: number[] = [];
  for (const s of segments) {
    offsets.push(offset);
    offset += (s.bytes.length + 15) & ~15;
  }
  const out = new Uint8Array(offset);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1, 0]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 243, true); // EM_RISCV
  dv.setUint32(20, 1, true);
  dv.setUint32(24, entry >>> 0, true);
  dv.setUint32(28, ehsize, true); // e_phoff
  dv.setUint32(32, 0, true); // e_shoff
  dv.setUint32(36, 0, true); // e_flags (no RVC)
  dv.setUint16(40, ehsize, true);
  dv.setUint16(42, phentsize, true);
  dv.setUint16(44, segments.length, true);
  dv.setUint16(46, 40, true);
  segments.forEach((s, i) => {
    const o = ehsize + i * phentsize;
    dv.setUint32(o, 1, true); // PT_LOAD
    dv.setUint32(o + 4, offsets[i], true);
    dv.setUint32(o + 8, s.addr >>> 0, true);
    dv.setUint32(o + 12, s.addr >>> 0, true);
    dv.setUint32(o + 16, s.bytes.length, true);
    dv.setUint32(o + 20, s.bytes.length, true);
    dv.setUint32(o + 24, 7, true); // RWX
    dv.setUint32(o + 28, 4, true);
    out.set(s.bytes, offsets[i]);
  });
  return out;
}
