// TLS over an already connected socket (QEMU's QIOChannelTLS with crypto/tlssession.c):
// the listening side (a monitor, a migration destination) is the TLS server, the connecting
// side (a migration source) the client. After the handshake the server checks the peer's
// identity against an authorization object, and the client the server's host name, with
// QEMU's words. The caller gets a TLSSocket, a net.Socket like any other.

import type { Socket } from "node:net";
import * as tls from "node:tls";
import { isIP } from "node:net";
import { authzAllows } from "./authz.js";
import { authzLookupOf, type AuthzLookup, type ObjectRegistry } from "./objects.js";
import type { AuthzDefinition } from "./authz.js";
import type { TlsCredsMaterial } from "./tls-creds.js";

/**
 * PSK suites (TLS 1.2: OpenSSL's TLS 1.3 PSK support in Node gives no identity hint and
 * resumption semantics differ, so minivm keeps PSK on TLS 1.2, as GnuTLS's NORMAL would
 * negotiate with an older peer).
 */
const PSK_CIPHERS = "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384";

/** The authorization a listening socket applies: an object id, looked up at each connection. */
export interface TlsAuthz {
  id: string;
  lookup: AuthzLookup;
}

/** The peer's identity as QEMU's authz sees it: the certificate's DN, RDNs in encoding order, comma-joined. */
export function peerIdentity(socket: tls.TLSSocket): string | null {
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return null;
  return cert.subject.split("\n").filter((l) => l !== "").join(",");
}

/** QEMU's reasons (tlssession.c) for OpenSSL's verification codes. */
function verifyReason(code: string | undefined, message: string): string {
  switch (code) {
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
      return "The certificate hasn't got a known issuer";
    case "CERT_REVOKED":
      return "The certificate has been revoked";
    case "CERT_HAS_EXPIRED":
      return "The certificate has expired";
    case "CERT_NOT_YET_VALID":
      return "The certificate is not yet activated";
    case "CERT_SIGNATURE_FAILURE":
    case "CERT_UNTRUSTED":
    case "CERT_REJECTED":
    case "INVALID_PURPOSE":
      return "The certificate is not trusted";
    case "CA_MD_TOO_WEAK":
    case "EE_KEY_TOO_SMALL":
      return "The certificate uses an insecure algorithm";
    default:
      return `TLS handshake failed: ${message}`;
  }
}

function secureOptions(m: TlsCredsMaterial): tls.SecureContextOptions {
  const o: tls.SecureContextOptions = { ...m.priority };
  if (m.kind === "x509") {
    o.ca = m.ca;
    if (m.cert !== undefined) o.cert = m.cert;
    if (m.key !== undefined) o.key = m.key;
    if (m.crl !== undefined) o.crl = m.crl;
    // QEMU deprecates dh-params.pem in favour of RFC 7919 groups; OpenSSL picks them with 'auto'.
    o.dhparam = m.dhparam ?? "auto";
  } else {
    o.ciphers = PSK_CIPHERS;
    o.maxVersion = "TLSv1.2";
    if (m.priority.minVersion === "TLSv1.3") o.minVersion = "TLSv1.3";
  }
  return o;
}

/**
 * The server side of a handshake on `raw` (QEMU's qio_channel_tls_new_server plus the
 * session's credential check). Resolves once the peer is verified and authorized; rejects
 * with QEMU's reason, after which `raw` is destroyed.
 */
export function acceptTls(raw: Socket, creds: TlsCredsMaterial, authz: TlsAuthz | null, opts: { allowHalfOpen?: boolean } = {}): Promise<tls.TLSSocket> {
  if (creds.endpoint !== "server") return Promise.reject(new Error("Expected TLS credentials for a server endpoint"));
  const verify = creds.kind === "x509" && creds.verifyPeer;
  // rejectUnauthorized stays off: with it Node drops a refused TLS 1.3 client silently, after
  // the handshake; minivm checks `authorized` itself below so every refusal has a reason.
  const options: tls.TlsOptions & { allowHalfOpen?: boolean } = { ...secureOptions(creds), requestCert: verify, rejectUnauthorized: false, handshakeTimeout: 10_000, allowHalfOpen: opts.allowHalfOpen === true };
  let pskIdentity: string | null = null;
  if (creds.kind === "psk") {
    const keys = creds.keys;
    options.pskCallback = (_socket, identity) => {
      const hex = keys[identity];
      if (hex === undefined) return null;
      pskIdentity = identity;
      return Buffer.from(hex, "hex");
    };
  }
  return new Promise<tls.TLSSocket>((resolvePromise, rejectPromise) => {
    let settled = false;
    const resolve = (s: tls.TLSSocket): void => {
      settled = true;
      resolvePromise(s);
    };
    const reject = (e: Error): void => {
      settled = true;
      rejectPromise(e);
    };
    raw.once("close", () => {
      if (!settled) reject(new Error("TLS handshake failed: The TLS connection was non-properly terminated."));
    });
    const server = tls.createServer(options);
    server.once("secureConnection", (socket: tls.TLSSocket) => {
      if (verify && !socket.authorized) {
        const code = String(socket.authorizationError ?? "");
        // GnuTLS's verify of a peer that sent no certificate: GNUTLS_E_NO_CERTIFICATE_FOUND.
        const noCert = socket.getPeerX509Certificate() === undefined;
        socket.destroy();
        reject(new Error(noCert ? "Verify failed: No certificate was found." : verifyReason(code, code)));
        return;
      }
      if (authz !== null) {
        const identity = creds.kind === "x509" ? peerIdentity(socket) : pskIdentity;
        const def = authz.lookup(authz.id);
        if (identity === null) {
          socket.destroy();
          reject(new Error("No certificate peers"));
          return;
        }
        if (def === null || !authzAllows(def, identity)) {
          socket.destroy();
          reject(new Error(`TLS ${creds.kind === "x509" ? "x509" : "PSK"} authz check for ${identity} is denied`));
          return;
        }
      }
      socket.on("error", () => socket.destroy());
      resolve(socket);
    });
    server.once("tlsClientError", (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      socket.destroy();
      raw.destroy();
      reject(new Error(verifyReason(err.code, err.message)));
    });
    server.emit("connection", raw);
  });
}

/**
 * The client side of a handshake on `raw` (qio_channel_tls_new_client). `hostname`, when
 * given, must match the server's certificate (QEMU's tls-hostname, or the URI's host).
 */
export function connectTls(raw: Socket, creds: TlsCredsMaterial, hostname: string | null): Promise<tls.TLSSocket> {
  if (creds.endpoint !== "client") return Promise.reject(new Error("Expected TLS credentials for a client endpoint"));
  const options: tls.ConnectionOptions = { ...secureOptions(creds), socket: raw, rejectUnauthorized: creds.kind === "x509" && creds.verifyPeer };
  let hostMismatch: string | null = null;
  if (creds.kind === "x509") {
    if (hostname !== null && hostname !== "" && isIP(hostname) === 0) options.servername = hostname;
    options.checkServerIdentity = (_host, cert) => {
      if (hostname === null || hostname === "" || !creds.verifyPeer) return undefined;
      const e = tls.checkServerIdentity(hostname, cert);
      if (e !== undefined) hostMismatch = `Certificate does not match the hostname ${hostname}`;
      return e;
    };
  } else {
    const username = creds.username ?? "qemu";
    const key = Buffer.from(creds.keys[username] ?? "", "hex");
    options.pskCallback = () => ({ psk: key, identity: username });
    options.checkServerIdentity = () => undefined;
  }
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const socket = tls.connect(options);
    const onError = (err: Error & { code?: string }): void => {
      socket.destroy();
      raw.destroy();
      reject(new Error(hostMismatch ?? verifyReason(err.code, err.message)));
    };
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      socket.off("error", onError);
      resolve(socket);
    });
    // The server may refuse us only after the handshake (authz): that is a close before any data.
  });
}

/**
 * What a migration channel needs for TLS (QEMU's migration/tls.c), resolved on the core thread
 * from migrate-set-parameters: the credentials and, on the source, the host name to check; on
 * the destination, the authz object's id with a snapshot of the authz objects. `error` carries
 * a lookup failure to where QEMU reports it: when the channel is set up, failing that
 * migration only. Everything but the two optional functions is plain data, so cloneableTls()
 * of it can go to a migration thread in workerData or a message.
 */
export type MigrationTls = (
  | { creds: TlsCredsMaterial; hostname: string | null; authz: { id: string; definitions: AuthzDefinition[] } | null }
  | { error: string }
) & {
  /** The destination's report of a refused connection (it keeps listening). Not cloneable. */
  refused?: (reason: string) => void;
  /** A live lookup of authz objects (the core thread's registry), used instead of the snapshot. Not cloneable. */
  lookup?: AuthzLookup;
};

/** `tls` without its functions: what may cross to a worker thread. */
export function cloneableTls(tls: MigrationTls | null): MigrationTls | null {
  if (tls === null) return null;
  const { refused: _refused, lookup: _lookup, ...data } = tls;
  return data as MigrationTls;
}

export interface MigrationTlsParameters {
  "tls-creds"?: string;
  "tls-hostname"?: string;
  "tls-authz"?: string;
}

/** Null when tls-creds is empty (a plain channel), as in QEMU. The source is the client. */
export function migrationTls(
  objects: Pick<ObjectRegistry, "tlsCreds" | "authz" | "authzDefinitions"> | undefined,
  params: MigrationTlsParameters,
  side: "source" | "destination",
): MigrationTls | null {
  const id = params["tls-creds"] ?? "";
  if (id === "") return null;
  if (objects === undefined) return { error: `No TLS credentials with id '${id}'` };
  try {
    const creds = objects.tlsCreds(id, side === "source" ? "client" : "server");
    const authzId = params["tls-authz"] ?? "";
    const authz = side === "destination" && authzId !== "" ? { id: authzId, definitions: objects.authzDefinitions() } : null;
    const hostname = side === "source" && (params["tls-hostname"] ?? "") !== "" ? (params["tls-hostname"] as string) : null;
    return { creds, hostname, authz, lookup: (a: string) => objects.authz(a) };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

/** The source's side: TLS client over the connected socket; the URI's host is the default tls-hostname. */
export function secureOutgoing(raw: Socket, tls: MigrationTls, uriHost: string | null): Promise<tls.TLSSocket> {
  if ("error" in tls) {
    raw.destroy();
    return Promise.reject(new Error(tls.error));
  }
  return connectTls(raw, tls.creds, tls.hostname ?? uriHost);
}

/** The destination's side: TLS server over an accepted socket, then authz (live lookup when there is one). */
export function secureIncoming(raw: Socket, tls: MigrationTls): Promise<tls.TLSSocket> {
  if ("error" in tls) {
    raw.destroy();
    return Promise.reject(new Error(tls.error));
  }
  const authz = tls.authz === null ? null : { id: tls.authz.id, lookup: tls.lookup ?? authzLookupOf(tls.authz.definitions) };
  // A migration channel stays open after the source's end until the destination has loaded.
  return acceptTls(raw, tls.creds, authz, { allowHalfOpen: true });
}
