// The virt board's mask ROM (QEMU 7.2 hw/riscv/boot.c riscv_setup_rom_reset_vec
// and riscv_rom_copy_firmware_info): a six-instruction reset vector that loads a0 = hartid,
// a1 = FDT address, a2 = &fw_dynamic_info and jumps to the start address, followed by the
// OpenSBI fw_dynamic_info block. Writes are ignored, as they are to QEMU's ROM.

import type { MmioDevice } from "./device.js";

export const BOOTROM_SIZE = 0xf000;

/** fw_dynamic_info (OpenSBI include/sbi/fw_dynamic.h): magic "OSBI", version 2. */
const FW_DYNAMIC_INFO_MAGIC = 0x4942534f;
const FW_DYNAMIC_INFO_VERSION = 2;
const FW_DYNAMIC_INFO_NEXT_MODE_S = 1;

export interface BootRomLayout {
  /** Where the reset vector jumps: DRAM base (or pflash). */
  startAddr: number;
  /** Guest-physical address of the device tree blob. */
  fdtAddr: number;
  /** fw_dynamic_info.next_addr: the kernel's lowest load address (0 without a kernel). */
  nextAddr: number;
}

export class BootRom implements MmioDevice {
  readonly name = "riscv_virt_board.mrom";
  readonly bytes = new Uint8Array(BOOTROM_SIZE);

  constructor(layout: BootRomLayout) {
    this.program(layout);
  }

  program(layout: BootRomLayout): void {
    this.bytes.fill(0);
    const words = [
      0x00000297, // auipc t0, 0
      0x02828613, // addi  a2, t0, 0x28   (&fw_dynamic_info)
      0xf1402573, // csrr  a0, mhartid
      0x0202a583, // lw    a1, 0x20(t0)   (FDT address)
      0x0182a283, // lw    t0, 0x18(t0)   (start address)
      0x00028067, // jr    t0
      layout.startAddr >>> 0, 0, // start address as a 64-bit little-endian dword
      layout.fdtAddr >>> 0, 0,
      FW_DYNAMIC_INFO_MAGIC,
      FW_DYNAMIC_INFO_VERSION,
      layout.nextAddr >>> 0,
      FW_DYNAMIC_INFO_NEXT_MODE_S,
      0, // options
      0, // boot_hart
    ];
    const view = new DataView(this.bytes.buffer);
    words.forEach((w, i) => view.setUint32(i * 4, w, true));
  }

  read(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (offset + i < BOOTROM_SIZE ? this.bytes[offset + i] : 0);
    return v;
  }

  write(): void {
    // ROM: stores are dropped.
  }
}
