// The block QMP commands on a real minivm and a real QEMU 7.2 with the same images: same
// replies, text for text, once generated node names and host-dependent sizes are masked.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireTool } from "../helpers/interop.js";
import { RawQmp, waitForQmpSocket } from "../helpers/raw-qmp.js";
import { startVm, tempDir, type VmProcess } from "../helpers/vm.js";

const haveQemu = requireTool("qemu-system-riscv32", "qemu-system-misc") && requireTool("qemu-img", "qemu-utils");

async function exchange(path: string, requests: string[]): Promise<string[]> {
  const r = await RawQmp.open(path);
  await r.negotiate();
  // All requests at once: in-band commands must still run one after another, each seeing
  // what the one before it did (block_resize is asynchronous in minivm).
  r.send(requests.map((q, i) => q.replace(/\}$/, `, "id": ${i}}`)).join(""));
  const replies = new Map<number, string>();
  for (let i = 0; i < requests.length; i++) {
    const got = await r.until((l) => (JSON.parse(l) as { id?: unknown }).id === i);
    replies.set(i, got[got.length - 1] as string);
  }
  r.close();
  const out = requests.map((_, i) => replies.get(i) as string);
  return out.map((l) =>
    l
      .replace(/\/(q|m)\//g, "/X/")
      .replace(/\(#block\d+\)/g, "(#blockN)")
      .replace(/#block\d+/g, "#blockN")
      .replace(/"actual-size": \d+/g, '"actual-size": S')
      // A protocol node's size is its host file's, which each side's allocation decides.
      .replace(/"virtual-size": \d+(, "filename": "[^"]*", "format": "file")/g, '"virtual-size": F$1')
      .replace(/"idle_time_ns": \d+, /g, ""),
  );
}

/** QEMU 7.2 with `args` and a QMP socket at `sock`, once the socket answers. */
async function startQemu(args: string[], sock: string): Promise<ChildProcess> {
  const qemu = spawn("qemu-system-riscv32", ["-M", "virt", "-bios", "none", "-S", "-display", "none", "-nodefaults", ...args, "-qmp", `unix:${sock},server=on,wait=off`], { stdio: "ignore" });
  try {
    await waitForQmpSocket(sock);
  } catch (e) {
    qemu.kill("SIGKILL");
    throw e;
  }
  return qemu;
}

describe.skipIf(!haveQemu)("block commands, differential against QEMU 7.2", () => {
  let qemu: ChildProcess;
  let vm: VmProcess;
  let dir: string;
  let qemuSock: string;
  beforeAll(async () => {
    dir = tempDir("minivm-block-");
    mkdirSync(join(dir, "q"));
    mkdirSync(join(dir, "m"));
    // Each side gets its own copy: the sequence resizes the image.
    for (const side of ["q", "m"]) {
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, side, "d0.qcow2"), "16M"]);
    }
    execFileSync("qemu-img", ["create", "-q", "-f", "raw", join(dir, "n.raw"), "8M"]);
    const drive = (side: string): string => `file=${join(dir, side, "d0.qcow2")},format=qcow2,if=none,id=d0,stats-intervals.0=60,stats-intervals.1=3600`;
    const device = ["virtio-blk-device,drive=d0,id=vd0"];
    qemuSock = join(dir, "q.sock");
    qemu = spawn("qemu-system-riscv32", ["-M", "virt", "-bios", "none", "-S", "-display", "none", "-nodefaults", "-drive", drive("q"), "-device", device[0] as string, "-qmp", `unix:${qemuSock},server=on,wait=off`], { stdio: "ignore" });
    vm = await startVm(["--drive", drive("m"), "--device", device[0] as string]);
    await waitForQmpSocket(qemuSock);
  }, 60_000);
  afterAll(async () => {
    qemu?.kill("SIGKILL");
    await vm?.kill();
  });

  it("answers block queries and errors the same way", async () => {
    const requests = [
      '{"execute": "query-block"}',
      '{"execute": "query-blockstats"}',
      '{"execute": "human-monitor-command", "arguments": {"command-line": "info block"}}',
      '{"execute": "human-monitor-command", "arguments": {"command-line": "info blockstats"}}',
      '{"execute": "block-latency-histogram-set", "arguments": {"id": "nope"}}',
      '{"execute": "block-latency-histogram-set", "arguments": {"id": "d0"}}',
      '{"execute": "block-latency-histogram-set", "arguments": {"id": "vd0", "boundaries": [1000, 50000], "boundaries-write": [10]}}',
      '{"execute": "query-blockstats"}',
      '{"execute": "block-latency-histogram-set", "arguments": {"id": "/machine/peripheral/vd0"}}',
      '{"execute": "query-blockstats"}',
      '{"execute": "block-latency-histogram-set", "arguments": {"id": "vd0", "boundaries": "x"}}',
      '{"execute": "block_resize", "arguments": {"device": "nope", "size": 1048576}}',
      '{"execute": "block_resize", "arguments": {"size": 1048576}}',
      `{"execute": "blockdev-add", "arguments": {"driver": "qcow2", "node-name": "n1", "file": {"driver": "file", "filename": "${join(dir, "missing.qcow2")}"}}}`,
      `{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "n2", "file": {"driver": "file", "filename": "${join(dir, "n.raw")}"}}}`,
      `{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "n2", "file": {"driver": "file", "filename": "${join(dir, "n.raw")}"}}}`,
      '{"execute": "blockdev-add", "arguments": {"driver": "nosuch"}}',
      '{"execute": "blockdev-add", "arguments": {"driver": "raw"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "nope"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "n2"}}',
      '{"execute": "block_resize", "arguments": {"device": "d0", "size": 33554432}}',
      '{"execute": "query-block"}',
      '{"execute": "query-named-block-nodes"}',
      '{"execute": "query-named-block-nodes", "arguments": {"flat": true}}',
    ];
    const q = await exchange(qemuSock, requests);
    const m = await exchange(vm.qmpPath, requests);
    for (let i = 0; i < requests.length; i++) {
      expect({ request: requests[i], reply: m[i] }).toEqual({ request: requests[i], reply: q[i] });
    }
  });
});

describe.skipIf(!haveQemu)("the block node graph, differential against QEMU 7.2", () => {
  let qemu: ChildProcess;
  let vm: VmProcess;
  let dir: string;
  let qemuSock: string;
  const side = (s: string, f: string): string => join(dir, s, f);
  beforeAll(async () => {
    dir = tempDir("minivm-graph-");
    for (const s of ["q", "m"]) {
      mkdirSync(join(dir, s));
      execFileSync("qemu-img", ["create", "-q", "-f", "raw", side(s, "base.raw"), "1M"]);
      // A relative backing name, as users write it: resolved beside the overlay.
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", side(s, "top.qcow2")]);
      for (const n of ["bd.raw", "n1.raw", "n2.raw"]) execFileSync("qemu-img", ["create", "-q", "-f", "raw", side(s, n), "1M"]);
    }
    const args = (s: string): string[] => [
      "-blockdev", `driver=raw,node-name=bd0,file.driver=file,file.filename=${side(s, "bd.raw")}`,
      "-drive", `file=${side(s, "top.qcow2")},format=qcow2,if=none,id=d0,node-name=top0`,
      "-device", "virtio-blk-device,drive=d0,id=vd0",
      "-device", "virtio-blk-device,drive=bd0,id=vd1",
    ];
    qemuSock = join(dir, "q.sock");
    qemu = await startQemu(args("q"), qemuSock);
    vm = await startVm(args("m").map((a) => (a.startsWith("-") ? `-${a}` : a)));
  }, 60_000);
  afterAll(async () => {
    qemu?.kill("SIGKILL");
    await vm?.kill();
  });

  it("lists, counts and deletes nodes the same way, backing chains and references included", async () => {
    const file = (s: string): string => join(dir, "SIDE", s);
    const requests = [
      '{"execute": "query-named-block-nodes"}',
      '{"execute": "query-named-block-nodes", "arguments": {"flat": true}}',
      '{"execute": "query-blockstats", "arguments": {"query-nodes": true}}',
      '{"execute": "query-blockstats"}',
      '{"execute": "query-block"}',
      '{"execute": "human-monitor-command", "arguments": {"command-line": "info block"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "top0"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "bd0"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "d0"}}',
      `{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "r1", "file": {"driver": "file", "node-name": "f1", "filename": "${file("n1.raw")}"}}}`,
      '{"execute": "blockdev-del", "arguments": {"node-name": "f1"}}',
      `{"execute": "blockdev-add", "arguments": {"driver": "file", "node-name": "f2", "filename": "${file("n2.raw")}"}}`,
      '{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "r2", "file": "f2"}}',
      '{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "r3", "file": "nope"}}',
      '{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "top0", "file": "f2"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "f2"}}',
      '{"execute": "query-named-block-nodes", "arguments": {"flat": true}}',
      '{"execute": "query-blockstats", "arguments": {"query-nodes": true}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "r2"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "f2"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "r1"}}',
      '{"execute": "blockdev-del", "arguments": {"node-name": "r1"}}',
      '{"execute": "query-named-block-nodes", "arguments": {"flat": true}}',
    ];
    const q = await exchange(qemuSock, requests.map((r) => r.replaceAll("/SIDE/", "/q/")));
    const m = await exchange(vm.qmpPath, requests.map((r) => r.replaceAll("/SIDE/", "/m/")));
    for (let i = 0; i < requests.length; i++) {
      expect({ request: requests[i], reply: m[i] }).toEqual({ request: requests[i], reply: q[i] });
    }
  });
});
