// QEMU's TLS credential objects (crypto/tlscreds*.c): tls-creds-x509 reads PEM files with
// fixed names from `dir`, tls-creds-psk reads `dir/keys.psk`. Loading turns an object's
// properties into plain material (file contents, keys) that any thread can hand to
// node:tls; the checks and their words are QEMU's, so nothing starts half-configured.

import { accessSync, constants, readFileSync } from "node:fs";
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { TlsCredsPskProperties, TlsCredsX509Properties } from "../qapi/generated/types.js";

export type TlsEndpoint = "client" | "server";

/** What node:tls takes for QEMU's GnuTLS priority string (see parsePriority). */
export interface TlsPriority {
  minVersion?: "TLSv1.2" | "TLSv1.3";
  maxVersion?: "TLSv1.2" | "TLSv1.3";
}

interface MaterialBase {
  id: string;
  endpoint: TlsEndpoint;
  verifyPeer: boolean;
  priority: TlsPriority;
}

export interface X509Material extends MaterialBase {
  kind: "x509";
  ca: string;
  /** This side's certificate and key: required for a server, optional for a client. */
  cert?: string;
  key?: string;
  crl?: string;
  dhparam?: string;
}

export interface PskMaterial extends MaterialBase {
  kind: "psk";
  /** A client's identity (default "qemu"); unset on a server. */
  username?: string;
  /** identity -> key in hex: a server's whole keys.psk, a client's own line. */
  keys: Record<string, string>;
}

/** Loaded credentials: structured-cloneable, so they travel to the monitor and migration threads. */
export type TlsCredsMaterial = X509Material | PskMaterial;

export type X509Options = { "qom-type": "tls-creds-x509"; id: string } & TlsCredsX509Properties;
export type PskOptions = { "qom-type": "tls-creds-psk"; id: string } & TlsCredsPskProperties;

/** QEMU's file names (include/crypto/tlscreds.h). */
export const TLS_FILES = {
  CA_CERT: "ca-cert.pem",
  CA_CRL: "ca-crl.pem",
  SERVER_CERT: "server-cert.pem",
  SERVER_KEY: "server-key.pem",
  CLIENT_CERT: "client-cert.pem",
  CLIENT_KEY: "client-key.pem",
  DH_PARAMS: "dh-params.pem",
  PSKFILE: "keys.psk",
} as const;

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  ENOTDIR: "Not a directory",
};

/** qcrypto_tls_creds_get_path: a required file must be readable; a missing optional one is skipped. */
function credsPath(dir: string | undefined, file: string, required: boolean): string | null {
  if (dir === undefined) {
    if (required) throw new Error("Missing 'dir' property value");
    return null;
  }
  const path = `${dir}/${file}`;
  try {
    accessSync(path, constants.R_OK);
    return path;
  } catch (e) {
    if (!required) return null;
    const code = (e as NodeJS.ErrnoException).code ?? "";
    throw new Error(`Unable to access credentials ${path}: ${ERRNO_TEXT[code] ?? code}`);
  }
}

/**
 * QEMU takes a GnuTLS priority string. minivm understands the keyword sets NORMAL, SECURE128,
 * SECURE192, SECURE256, PERFORMANCE and @SYSTEM (all meaning OpenSSL's defaults) followed by
 * `:-VERS-TLS1.3`, `:-VERS-TLS1.2`, `:+VERS-TLS1.2`, `:+VERS-TLS1.3`, `:-VERS-ALL`; anything
 * else is refused rather than silently ignored.
 */
export function parsePriority(text: string | undefined): TlsPriority {
  if (text === undefined || text === "") return {};
  const [base = "", ...mods] = text.split(":");
  if (!["NORMAL", "SECURE128", "SECURE192", "SECURE256", "PERFORMANCE", "@SYSTEM"].includes(base)) {
    throw new Error(`Unable to set TLS session priority ${text}: minivm understands NORMAL, SECURE128, SECURE192, SECURE256, PERFORMANCE or @SYSTEM, then :-VERS-TLS1.2 / :-VERS-TLS1.3 / :+VERS-...`);
  }
  const versions = new Set(["TLSv1.2", "TLSv1.3"]);
  for (const m of mods) {
    if (m === "-VERS-ALL") versions.clear();
    else if (m === "-VERS-TLS1.3") versions.delete("TLSv1.3");
    else if (m === "-VERS-TLS1.2") versions.delete("TLSv1.2");
    else if (m === "+VERS-TLS1.3") versions.add("TLSv1.3");
    else if (m === "+VERS-TLS1.2") versions.add("TLSv1.2");
    else throw new Error(`Unable to set TLS session priority ${text}: minivm does not understand '${m}' (only the VERS-TLS1.2/1.3 modifiers)`);
  }
  if (versions.size === 0) throw new Error(`Unable to set TLS session priority ${text}: no protocol version is left enabled`);
  const min = versions.has("TLSv1.2") ? "TLSv1.2" : "TLSv1.3";
  const max = versions.has("TLSv1.3") ? "TLSv1.3" : "TLSv1.2";
  return { minVersion: min, maxVersion: max };
}

function read(path: string): string {
  return readFileSync(path, "utf8");
}

/** PEM blocks of one kind, in order. */
function pemBlocks(text: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, "g");
  return text.match(re) ?? [];
}

function parseCerts(path: string, what: "CA" | "server" | "client"): X509Certificate[] {
  const blocks = pemBlocks(read(path), "CERTIFICATE");
  const fail = (): Error => new Error(what === "CA" ? `Unable to import CA certificate list ${path}` : `Unable to import ${what} certificate ${path}`);
  if (blocks.length === 0) throw fail();
  try {
    return blocks.map((b) => new X509Certificate(b));
  } catch {
    throw fail();
  }
}

/** qcrypto_tls_creds_check_cert: times, basic constraints, key usage and purpose of one certificate. */
function checkCert(cert: X509Certificate, file: string, isServer: boolean, isCA: boolean): void {
  const now = Date.now();
  const role = isCA ? "CA" : isServer ? "server" : "client";
  if (Date.parse(cert.validTo) < now) throw new Error(`The ${role} certificate ${file} has expired`);
  if (Date.parse(cert.validFrom) > now) throw new Error(`The ${role} certificate ${file} is not yet active`);
  if (cert.ca && !isCA) throw new Error(`The certificate ${file} basic constraints show a CA, but we need one for a ${isServer ? "server" : "client"}`);
  if (!cert.ca && isCA) throw new Error(`The certificate ${file} basic constraints do not show a CA`);
  if (!isCA) {
    // QEMU refuses a purpose list without the role only when the extension is critical;
    // Node does not say whether it is, so minivm refuses whenever the list excludes the role.
    const purposes = cert.keyUsage;
    if (purposes !== undefined && purposes.length > 0) {
      const serverAuth = "1.3.6.1.5.5.7.3.1";
      const clientAuth = "1.3.6.1.5.5.7.3.2";
      const any = "2.5.29.37.0";
      const ok = purposes.includes(any) || purposes.includes(isServer ? serverAuth : clientAuth);
      if (!ok) throw new Error(`Certificate ${file} purpose does not allow use with a TLS ${isServer ? "server" : "client"}`);
    }
  }
}

/** qcrypto_tls_creds_x509_sanity_check: our own certificate, the CA, and that the CA signed it. */
function sanityCheck(caFile: string, certFile: string | null, isServer: boolean): void {
  const cas = parseCerts(caFile, "CA");
  for (const ca of cas) checkCert(ca, caFile, isServer, true);
  if (certFile === null) return;
  const certs = parseCerts(certFile, isServer ? "server" : "client");
  for (const c of certs) checkCert(c, certFile, isServer, false);
  const leaf = certs[0] as X509Certificate;
  const chain = [...certs.slice(1), ...cas];
  const issuer = chain.find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey));
  if (issuer === undefined) {
    throw new Error(`Our own certificate ${certFile} failed validation against ${caFile}: The certificate hasn't got a known issuer`);
  }
}

function loadKeyPair(certFile: string, keyFile: string): { cert: string; key: string } {
  const cert = read(certFile);
  const key = read(keyFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`Cannot load certificate '${certFile}' & key '${keyFile}': Base64 decoding error.`);
  }
  let ok: boolean;
  try {
    ok = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    // An encrypted key would need passwordid (a secret object), which minivm lacks.
    throw new Error(`Cannot load certificate '${certFile}' & key '${keyFile}': The requested data were not available.`);
  }
  // GnuTLS's words for GNUTLS_E_CERTIFICATE_KEY_MISMATCH.
  if (!ok) throw new Error(`Cannot load certificate '${certFile}' & key '${keyFile}': The certificate and the given key do not match.`);
  return { cert, key };
}

/** Load a tls-creds-x509 object (qcrypto_tls_creds_x509_load). */
export function loadX509(o: X509Options): X509Material {
  const endpoint = o.endpoint ?? "client";
  const isServer = endpoint === "server";
  const priority = parsePriority(o.priority);
  if (o.passwordid !== undefined) throw new Error(`tls-creds-x509 '${o.id}': passwordid is not supported by minivm (use an unencrypted key, mode 0600)`);
  const caFile = credsPath(o.dir, TLS_FILES.CA_CERT, true) as string;
  let certFile: string | null;
  let keyFile: string | null;
  let crlFile: string | null = null;
  let dhFile: string | null = null;
  if (isServer) {
    crlFile = credsPath(o.dir, TLS_FILES.CA_CRL, false);
    certFile = credsPath(o.dir, TLS_FILES.SERVER_CERT, true);
    keyFile = credsPath(o.dir, TLS_FILES.SERVER_KEY, true);
    dhFile = credsPath(o.dir, TLS_FILES.DH_PARAMS, false);
  } else {
    certFile = credsPath(o.dir, TLS_FILES.CLIENT_CERT, false);
    keyFile = credsPath(o.dir, TLS_FILES.CLIENT_KEY, false);
  }
  if (o["sanity-check"] !== false) sanityCheck(caFile, certFile, isServer);
  const m: X509Material = { kind: "x509", id: o.id, endpoint, verifyPeer: o["verify-peer"] ?? true, priority, ca: read(caFile) };
  if (certFile !== null && keyFile !== null) Object.assign(m, loadKeyPair(certFile, keyFile));
  if (crlFile !== null) m.crl = read(crlFile);
  if (dhFile !== null) m.dhparam = read(dhFile);
  return m;
}

/** Parse keys.psk: `username:hexkey` per line (psktool's format). */
function parsePskFile(path: string): Map<string, string> {
  let text: string;
  try {
    text = read(path);
  } catch (e) {
    throw new Error(`Cannot read PSK file ${path}: ${(e as Error).message}`);
  }
  const keys = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    keys.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return keys;
}

/** Load a tls-creds-psk object (qcrypto_tls_creds_psk_load). */
export function loadPsk(o: PskOptions): PskMaterial {
  const endpoint = o.endpoint ?? "client";
  const priority = parsePriority(o.priority);
  const base = { kind: "psk" as const, id: o.id, endpoint, verifyPeer: o["verify-peer"] ?? true, priority };
  if (endpoint === "server") {
    if (o.username !== undefined) throw new Error("username should not be set when endpoint=server");
    const path = credsPath(o.dir, TLS_FILES.PSKFILE, true) as string;
    return { ...base, keys: Object.fromEntries(parsePskFile(path)) };
  }
  const path = credsPath(o.dir, TLS_FILES.PSKFILE, true) as string;
  const username = o.username ?? "qemu";
  const key = parsePskFile(path).get(username);
  if (key === undefined) throw new Error(`Username ${username} not found in PSK file ${path}`);
  if (!/^([0-9a-fA-F]{2})+$/.test(key)) throw new Error(`Cannot read PSK file ${path}: the key of ${username} is not hexadecimal`);
  return { ...base, username, keys: { [username]: key } };
}
