// The remote protocol's framing: checksums and acks, escapes, run-length encoding, the
// interrupt byte, and the wire examples of QEMU's stub (gdb.texinfo "Overview").

import { describe, expect, it } from "vitest";
import { framePacket, PacketReader, parseRegHex, regHex } from "../../src/gdb/packet.js";

describe("remote protocol framing", () => {
  it("frames replies with QEMU's checksums", () => {
    expect(framePacket("OK").toString()).toBe("$OK#9a");
    expect(framePacket("").toString()).toBe("$#00");
    expect(framePacket("T05thread:p01.01;").toString()).toBe("$T05thread:p01.01;#06");
    expect(framePacket("E14").toString()).toBe("$E14#aa");
  });

  it("acks good packets, nacks a bad checksum and passes 0x03 on as an interrupt", () => {
    const r = new PacketReader();
    const a = r.feed(Buffer.from("+$qAttached#8f$g#00\x03-"));
    expect(a.acks).toBe("+-");
    expect(a.items).toEqual([{ kind: "packet", data: "qAttached" }, { kind: "interrupt" }, { kind: "nack" }]);
  });

  it("reassembles a packet split across reads, and undoes escapes and run-length encoding", () => {
    const r = new PacketReader();
    expect(r.feed(Buffer.from("$vCo")).items).toEqual([]);
    expect(r.feed(Buffer.from("nt?#49")).items).toEqual([{ kind: "packet", data: "vCont?" }]);
    // "0* " is '0' repeated 3 more times; "}\x03" is an escaped '#'.
    const body = Buffer.from("X0* }\x03");
    let sum = 0;
    for (const b of body) sum = (sum + b) & 0xff;
    const got = r.feed(Buffer.concat([Buffer.from("$"), body, Buffer.from("#" + sum.toString(16).padStart(2, "0"))]));
    expect(got.items).toEqual([{ kind: "packet", data: "X0000#" }]);
  });

  it("escapes the reserved bytes of a binary reply", () => {
    expect(framePacket("l}#", true).toString("latin1")).toBe("$l}]}\x03#" + ((0x6c + 0x7d + 0x5d + 0x7d + 0x03) & 0xff).toString(16));
  });

  it("carries registers in target byte order", () => {
    expect(regHex(0x800002a0)).toBe("a0020080");
    expect(parseRegHex("a0020080") >>> 0).toBe(0x800002a0);
  });
});
