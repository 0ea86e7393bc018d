// Test credentials made at run time with openssl (never committed): a CA, server and client
// certificates in QEMU's file layout, a second unrelated CA, an expired certificate and a
// keys.psk file. EC P-256 keys keep generation fast.

import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool } from "../helpers/interop.js";

export interface Pki {
  root: string;
  /** endpoint=server dir: ca-cert.pem, server-cert.pem, server-key.pem. */
  serverDir: string;
  /** endpoint=client dir: ca-cert.pem, client-cert.pem, client-key.pem (DN clientDn). */
  clientDir: string;
  /** A client whose certificate has a different DN (outside an authz list). */
  otherClientDir: string;
  /** A client with a certificate from a CA the server does not trust. */
  wrongCaClientDir: string;
  /** Plain files for Python/socat: the CA, client cert and key. */
  caCert: string;
  clientCert: string;
  clientKey: string;
  wrongCaCert: string;
  wrongCaClientCert: string;
  wrongCaClientKey: string;
  /** The DN QEMU's authz sees for clientDir's certificate. */
  clientDn: string;
  otherClientDn: string;
  /** A server dir whose certificate expired in 2020. */
  expiredServerDir: string;
  /** A server dir whose key belongs to another certificate. */
  mismatchedServerDir: string;
  /** PSK dirs: keys.psk with identity "alice" (client) and "alice" + "bob" (server). */
  pskServerDir: string;
  pskClientDir: string;
  pskWrongClientDir: string;
}

function openssl(cwd: string, args: string[]): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

const CA_CNF = `[ ca ]
default_ca = CA_default
[ CA_default ]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
copy_extensions = none
unique_subject = no
[ policy_any ]
countryName = optional
organizationName = optional
commonName = supplied
`;

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function makeCa(dir: string, cn: string): void {
  mkdirSync(dir, { recursive: true });
  openssl(dir, ["req", "-x509", ...EC, "-keyout", "ca-key.pem", "-out", "ca-cert.pem", "-days", "3", "-subj", `/CN=${cn}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  writeFileSync(join(dir, "ca.cnf"), CA_CNF);
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "1000\n");
}

/** Issue a leaf certificate from the CA in `caDir`; dates default to now .. +3 days. */
function issue(caDir: string, name: string, subj: string, purpose: "serverAuth" | "clientAuth", dates?: [string, string]): { cert: string; key: string } {
  const key = join(caDir, `${name}-key.pem`);
  const cert = join(caDir, `${name}-cert.pem`);
  openssl(caDir, ["req", ...EC, "-keyout", key, "-out", `${name}.csr`, "-subj", subj]);
  const ext = join(caDir, `${name}.ext`);
  writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${purpose}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n`);
  const [start, end] = dates ?? [null, null];
  const dateArgs = start === null ? ["-days", "3"] : ["-startdate", start, "-enddate", end as string];
  openssl(caDir, ["ca", "-batch", "-config", "ca.cnf", "-cert", "ca-cert.pem", "-keyfile", "ca-key.pem", "-in", `${name}.csr`, "-out", cert, "-notext", "-extfile", ext, ...dateArgs]);
  chmodSync(key, 0o600);
  return { cert, key };
}

function credsDir(root: string, name: string, caCert: string, role: "server" | "client", pair: { cert: string; key: string }): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(caCert, join(dir, "ca-cert.pem"));
  copyFileSync(pair.cert, join(dir, `${role}-cert.pem`));
  copyFileSync(pair.key, join(dir, `${role}-key.pem`));
  chmodSync(join(dir, `${role}-key.pem`), 0o600);
  return dir;
}

function pskDir(root: string, name: string, lines: string[]): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "keys.psk"), lines.map((l) => `${l}\n`).join(""), { mode: 0o600 });
  return dir;
}

/** Whether openssl is here (a failure instead under MINIVM_REQUIRE_INTEROP=1). */
export const HAVE_OPENSSL = requireTool("openssl", "openssl");

export function makePki(): Pki {
  const root = mkdtempSync(join(tmpdir(), "minivm-pki-"));
  const ca = join(root, "ca");
  const wrong = join(root, "wrong-ca");
  makeCa(ca, "minivm test CA");
  makeCa(wrong, "some other CA");
  const caCert = join(ca, "ca-cert.pem");
  const server = issue(ca, "server", "/O=minivm tests/CN=localhost", "serverAuth");
  const client = issue(ca, "client", "/C=GB/O=minivm tests/CN=teacher", "clientAuth");
  const other = issue(ca, "other", "/C=GB/O=minivm tests/CN=student", "clientAuth");
  const expired = issue(ca, "expired", "/O=minivm tests/CN=localhost", "serverAuth", ["20200101000000Z", "20200102000000Z"]);
  const stranger = issue(wrong, "client", "/C=GB/O=minivm tests/CN=teacher", "clientAuth");
  const serverDir = credsDir(root, "server", caCert, "server", server);
  const mismatchedServerDir = credsDir(root, "mismatched", caCert, "server", { cert: server.cert, key: other.key });
  const alice = "0123456789abcdef0123456789abcdef";
  return {
    root,
    serverDir,
    clientDir: credsDir(root, "client", caCert, "client", client),
    otherClientDir: credsDir(root, "other", caCert, "client", other),
    wrongCaClientDir: credsDir(root, "wrong-client", join(wrong, "ca-cert.pem"), "client", stranger),
    caCert,
    clientCert: client.cert,
    clientKey: client.key,
    wrongCaCert: join(wrong, "ca-cert.pem"),
    wrongCaClientCert: stranger.cert,
    wrongCaClientKey: stranger.key,
    clientDn: "C=GB,O=minivm tests,CN=teacher",
    otherClientDn: "C=GB,O=minivm tests,CN=student",
    expiredServerDir: credsDir(root, "expired", caCert, "server", expired),
    mismatchedServerDir,
    pskServerDir: pskDir(root, "psk-server", [`alice:${alice}`, "bob:fedcba9876543210fedcba9876543210"]),
    pskClientDir: pskDir(root, "psk-client", [`alice:${alice}`]),
    pskWrongClientDir: pskDir(root, "psk-wrong", ["alice:00000000000000000000000000000000"]),
  };
}
