// TLS cost beside plaintext (issue 15): the QMP query-status round trip on a minivm monitor
// over plain TCP and over TLS (x509, client certificate), the TLS connect (handshake) time,
// and migration channel throughput (channels.ts openOutgoing/listenIncoming, 256 MiB of
// page-sized writes) plain, x509 and PSK. Credentials are made with openssl. Prints JSON.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import type { Readable } from "node:stream";
import { Bench } from "tinybench";
import { ObjectRegistry } from "../src/crypto/objects.js";
import { migrationTls } from "../src/crypto/tls-channel.js";
import { listenIncoming, openOutgoing } from "../src/migration/channels.js";

const repo = process.cwd();
const dir = mkdtempSync(join(tmpdir(), "minivm-bench-tls-"));

function openssl(args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCreds(): { server: string; client: string; pskServer: string; pskClient: string } {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca-key.pem", "-out", "ca-cert.pem", "-days", "2", "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
  const leaf = (name: string, purpose: string): void => {
    openssl(["req", ...ec, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", `/O=bench/CN=localhost`]);
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nextendedKeyUsage=${purpose}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n`);
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "2", "-out", `${name}-cert.pem`, "-extfile", `${name}.ext`]);
  };
  leaf("server", "serverAuth");
  leaf("client", "clientAuth");
  const server = join(dir, "server");
  const client = join(dir, "client");
  for (const [d, role] of [[server, "server"], [client, "client"]] as const) {
    mkdirSync(d);
    writeFileSync(join(d, "ca-cert.pem"), readFileSync(join(dir, "ca-cert.pem")));
    writeFileSync(join(d, `${role}-cert.pem`), readFileSync(join(dir, `${role}-cert.pem`)));
    writeFileSync(join(d, `${role}-key.pem`), readFileSync(join(dir, `${role}-key.pem`)));
  }
  const pskServer = join(dir, "psk-server");
  const pskClient = join(dir, "psk-client");
  for (const d of [pskServer, pskClient]) {
    mkdirSync(d);
    writeFileSync(join(d, "keys.psk"), "qemu:00112233445566778899aabbccddeeff\n");
  }
  return { server, client, pskServer, pskClient };
}

/** One QMP connection read line by line. */
class Line {
  private buf = "";
  private waiters: Array<(l: string) => void> = [];
  private lines: string[] = [];
  constructor(readonly s: net.Socket) {
    s.setNoDelay(true);
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        const l = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const w = this.waiters.shift();
        if (w) w(l);
        else this.lines.push(l);
      }
    });
  }
  next(): Promise<string> {
    const l = this.lines.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((r) => this.waiters.push(r));
  }
  async roundTrip(cmd: string): Promise<string> {
    this.s.write(`{"execute":"${cmd}"}\n`);
    return this.next();
  }
}

async function qmpOver(connect: () => net.Socket, ready: string): Promise<Line> {
  const s = connect();
  await new Promise<void>((resolve, reject) => {
    s.once(ready, () => resolve());
    s.once("error", reject);
  });
  const l = new Line(s);
  await l.next();
  await l.roundTrip("qmp_capabilities");
  return l;
}

function stats(t: Bench["tasks"][number]): { median_us: number | null; p99_us: number | null; samples: number } {
  const l = t.result?.latency;
  const us = (ms: number | undefined): number | null => (ms === undefined ? null : Math.round(ms * 1000 * 100) / 100);
  return { median_us: us(l?.p50), p99_us: us(l?.p99), samples: l?.samples?.length ?? 0 };
}

/** MiB/s through a migration channel with optional TLS on both ends. */
async function channelThroughput(reg: ObjectRegistry | null, ids: { src: string; dst: string } | null, mib: number): Promise<number> {
  const objects = reg ?? undefined;
  const inTls = ids === null ? null : migrationTls(objects, { "tls-creds": ids.dst }, "destination");
  const outTls = ids === null ? null : migrationTls(objects, { "tls-creds": ids.src, "tls-hostname": "localhost" }, "source");
  const listener = await listenIncoming("tcp:127.0.0.1:0", inTls);
  const port = listener.socketAddress[0]?.type === "inet" ? listener.socketAddress[0].port : "0";
  const total = mib << 20;
  const received = listener.accept().then(
    (input: Readable) =>
      new Promise<void>((resolve) => {
        let n = 0;
        input.on("data", (d: Buffer) => {
          n += d.length;
          if (n >= total) resolve();
        });
        input.resume();
      }),
  );
  const t0 = performance.now();
  const out = await openOutgoing(`tcp:127.0.0.1:${port}`, outTls);
  const page = Buffer.alloc(4096, 0x5a);
  const chunk = Buffer.concat(Array.from({ length: 64 }, () => page));
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!out.stream.write(chunk)) await new Promise((r) => out.stream.once("drain", r));
  }
  await received;
  const secs = (performance.now() - t0) / 1000;
  await out.close();
  await listener.close();
  return Math.round((mib / secs) * 10) / 10;
}

const procs: ChildProcess[] = [];
try {
  const creds = makeCreds();
  const reg = new ObjectRegistry();
  reg.add({ "qom-type": "tls-creds-x509", id: "srv", dir: creds.server, endpoint: "server" });
  reg.add({ "qom-type": "tls-creds-x509", id: "cli", dir: creds.client, endpoint: "client" });
  reg.add({ "qom-type": "tls-creds-psk", id: "psrv", dir: creds.pskServer, endpoint: "server" });
  reg.add({ "qom-type": "tls-creds-psk", id: "pcli", dir: creds.pskClient, endpoint: "client" });

  const vm = spawn(
    process.execPath,
    [join(repo, "bin/minivm.js"), "run", "-S", "--bios", "none", "--qmp", "tcp:127.0.0.1:0,server=on,wait=off",
      "-object", `tls-creds-x509,id=tls0,dir=${creds.server},endpoint=server`,
      "-chardev", "socket,id=t,host=127.0.0.1,port=0,server=on,wait=off,tls-creds=tls0", "-mon", "chardev=t,mode=control"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  procs.push(vm);
  const ports = await new Promise<number[]>((resolve, reject) => {
    let err = "";
    vm.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      const found = [...err.matchAll(/listening on tcp:[^\s]*:(\d+)/g)].map((m) => Number(m[1]));
      if (found.length >= 2) resolve(found);
    });
    vm.on("exit", () => reject(new Error(err)));
  });
  const [plainPort, tlsPort] = ports as [number, number];
  const tlsOptions = (): tls.ConnectionOptions => ({
    host: "127.0.0.1",
    port: tlsPort,
    ca: readFileSync(join(creds.client, "ca-cert.pem")),
    cert: readFileSync(join(creds.client, "client-cert.pem")),
    key: readFileSync(join(creds.client, "client-key.pem")),
    servername: "localhost",
  });
  const plain = await qmpOver(() => net.connect(plainPort, "127.0.0.1"), "connect");
  const secure = await qmpOver(() => tls.connect(tlsOptions()), "secureConnect");

  const bench = new Bench({ time: 2000, warmupTime: 300 });
  bench.add("query-status round trip, plain tcp", async () => {
    await plain.roundTrip("query-status");
  });
  bench.add("query-status round trip, TLS x509", async () => {
    await secure.roundTrip("query-status");
  });
  bench.add("TLS x509 connect + greeting", async () => {
    const l = await qmpOver(() => tls.connect(tlsOptions()), "secureConnect");
    l.s.destroy();
  });
  await bench.run();

  const mib = 256;
  const channel = {
    mib,
    plain_mib_s: await channelThroughput(null, null, mib),
    x509_mib_s: await channelThroughput(reg, { src: "cli", dst: "srv" }, mib),
    psk_mib_s: await channelThroughput(reg, { src: "pcli", dst: "psrv" }, mib),
  };
  const results = Object.fromEntries(bench.tasks.map((t) => [t.name, stats(t)]));
  process.stdout.write(`${JSON.stringify({ suite: "tls", qmp: results, migration_channel: channel }, null, 2)}\n`);
} finally {
  for (const p of procs) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
