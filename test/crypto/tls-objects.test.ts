import { describe, expect, it, beforeAll } from "vitest";
import { join } from "node:path";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { ObjectRegistry, parseObjectOption } from "../../src/crypto/objects.js";
import { authzAllows, globMatch } from "../../src/crypto/authz.js";
import { parsePriority } from "../../src/crypto/tls-creds.js";
import { HAVE_OPENSSL, makePki, type Pki } from "./pki.js";

describe("-object parsing", () => {
  it("reads QEMU's keyval form with the type first and on/off booleans", () => {
    expect(parseObjectOption("tls-creds-x509,id=tls0,dir=/etc/pki/qemu,endpoint=server,verify-peer=off")).toEqual({
      "qom-type": "tls-creds-x509",
      id: "tls0",
      dir: "/etc/pki/qemu",
      endpoint: "server",
      "verify-peer": false,
    });
  });

  it("reads authz-list rules from dotted keys and from JSON", () => {
    const dotted = parseObjectOption("authz-list,id=auth0,policy=deny,rules.0.match=CN=a,,O=b,rules.0.policy=allow,rules.1.match=*student*,rules.1.policy=deny,rules.1.format=glob");
    expect(dotted).toEqual({
      "qom-type": "authz-list",
      id: "auth0",
      policy: "deny",
      rules: [
        { match: "CN=a,O=b", policy: "allow" },
        { match: "*student*", policy: "deny", format: "glob" },
      ],
    });
    expect(parseObjectOption(JSON.stringify(dotted))).toEqual(dotted);
  });

  it("refuses an unknown type and an unknown property through the schema's visitor", () => {
    expect(() => parseObjectOption("rng-random,id=r0")).toThrow(/qom-type/);
    expect(() => parseObjectOption("authz-simple,id=a,identity=x,colour=blue")).toThrow(/colour/);
    expect(() => parseObjectOption("tls-creds-x509,id=t,verify-peer=maybe")).toThrow("Parameter 'verify-peer' expects 'on' or 'off'");
  });
});

describe("authz", () => {
  it("authz-simple allows exactly its identity", () => {
    const a = { "qom-type": "authz-simple" as const, id: "a", identity: "CN=x" };
    expect(authzAllows(a, "CN=x")).toBe(true);
    expect(authzAllows(a, "CN=x,O=y")).toBe(false);
  });

  it("authz-list: the first matching rule decides, the policy decides the rest", () => {
    const l = {
      "qom-type": "authz-list" as const,
      id: "l",
      policy: "allow" as const,
      rules: [
        { match: "*CN=student*", policy: "deny" as const, format: "glob" as const },
        { match: "CN=student-admin", policy: "allow" as const },
      ],
    };
    expect(authzAllows(l, "CN=student-admin")).toBe(false);
    expect(authzAllows(l, "CN=teacher")).toBe(true);
    expect(authzAllows({ ...l, policy: undefined }, "CN=teacher")).toBe(false);
  });

  it("glob has fnmatch's ? * and [] and no regex surprises", () => {
    expect(globMatch("C=GB,O=*,CN=t?acher", "C=GB,O=minivm tests,CN=teacher")).toBe(true);
    expect(globMatch("CN=[ab]ob", "CN=bob")).toBe(true);
    expect(globMatch("CN=[!ab]ob", "CN=bob")).toBe(false);
    expect(globMatch("CN=a.c", "CN=abc")).toBe(false);
  });
});

describe("priority", () => {
  it("maps GnuTLS version modifiers and refuses what it cannot honour", () => {
    expect(parsePriority("NORMAL")).toEqual({ minVersion: "TLSv1.2", maxVersion: "TLSv1.3" });
    expect(parsePriority("NORMAL:-VERS-TLS1.3")).toEqual({ minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
    expect(parsePriority("@SYSTEM:-VERS-TLS1.2")).toEqual({ minVersion: "TLSv1.3", maxVersion: "TLSv1.3" });
    expect(() => parsePriority("NORMAL:+AES-128-CBC")).toThrow(/does not understand '\+AES-128-CBC'/);
    expect(() => parsePriority("NONE")).toThrow(/Unable to set TLS session priority NONE/);
  });
});

describe.runIf(HAVE_OPENSSL)("loading credentials", () => {
  let pki: Pki;
  beforeAll(() => {
    pki = makePki();
  });

  const x509 = (id: string, dir: string, endpoint: "server" | "client", more: Record<string, unknown> = {}) =>
    ({ "qom-type": "tls-creds-x509", id, dir, endpoint, ...more }) as const;

  it("loads server and client certificates and hands out the right endpoint", () => {
    const reg = new ObjectRegistry();
    reg.add(x509("srv", pki.serverDir, "server"));
    reg.add(x509("cli", pki.clientDir, "client"));
    expect(reg.tlsCreds("srv", "server").kind).toBe("x509");
    expect(() => reg.tlsCreds("srv", "client")).toThrow("Expected TLS credentials for a client endpoint");
    expect(() => reg.tlsCreds("nope", "server")).toThrow("No TLS credentials with id 'nope'");
    reg.add({ "qom-type": "authz-simple", id: "az", identity: "CN=x" });
    expect(() => reg.tlsCreds("az", "server")).toThrow("Object with id 'az' is not TLS credentials");
    expect(reg.list().map((o) => o.id)).toEqual(["srv", "cli", "az"]);
  });

  it("names a missing required file, and a missing dir", () => {
    const reg = new ObjectRegistry();
    expect(() => reg.add(x509("t", pki.clientDir, "server"))).toThrow(`Unable to access credentials ${pki.clientDir}/server-cert.pem: No such file or directory`);
    expect(() => reg.add({ "qom-type": "tls-creds-x509", id: "t", endpoint: "server" })).toThrow("Missing 'dir' property value");
    expect(reg.list()).toEqual([]);
  });

  it("refuses an expired certificate, a key that does not match, and a CA that did not sign us", () => {
    const reg = new ObjectRegistry();
    expect(() => reg.add(x509("t", pki.expiredServerDir, "server"))).toThrow(`The server certificate ${pki.expiredServerDir}/server-cert.pem has expired`);
    expect(() => reg.add(x509("t", pki.mismatchedServerDir, "server"))).toThrow(
      `Cannot load certificate '${pki.mismatchedServerDir}/server-cert.pem' & key '${pki.mismatchedServerDir}/server-key.pem': The certificate and the given key do not match.`,
    );
    const mixed = join(pki.root, "mixed");
    mkdirSync(mixed);
    copyFileSync(pki.wrongCaCert, join(mixed, "ca-cert.pem"));
    copyFileSync(join(pki.serverDir, "server-cert.pem"), join(mixed, "server-cert.pem"));
    copyFileSync(join(pki.serverDir, "server-key.pem"), join(mixed, "server-key.pem"));
    expect(() => reg.add(x509("t", mixed, "server"))).toThrow(
      `Our own certificate ${mixed}/server-cert.pem failed validation against ${mixed}/ca-cert.pem: The certificate hasn't got a known issuer`,
    );
    // sanity-check=off skips the checks, as in QEMU.
    reg.add(x509("t", mixed, "server", { "sanity-check": false }));
  });

  it("a client certificate used as a server's is refused for its purpose", () => {
    const dir = join(pki.root, "client-as-server");
    mkdirSync(dir);
    copyFileSync(pki.caCert, join(dir, "ca-cert.pem"));
    copyFileSync(pki.clientCert, join(dir, "server-cert.pem"));
    copyFileSync(pki.clientKey, join(dir, "server-key.pem"));
    expect(() => new ObjectRegistry().add(x509("t", dir, "server"))).toThrow(`Certificate ${dir}/server-cert.pem purpose does not allow use with a TLS server`);
  });

  it("PSK: QEMU's keys.psk, the username rules and its words", () => {
    const reg = new ObjectRegistry();
    reg.add({ "qom-type": "tls-creds-psk", id: "ps", dir: pki.pskServerDir, endpoint: "server" });
    expect(() => reg.add({ "qom-type": "tls-creds-psk", id: "p2", dir: pki.pskServerDir, endpoint: "server", username: "alice" })).toThrow(
      "username should not be set when endpoint=server",
    );
    reg.add({ "qom-type": "tls-creds-psk", id: "pc", dir: pki.pskClientDir, endpoint: "client", username: "alice" });
    expect(() => reg.add({ "qom-type": "tls-creds-psk", id: "p3", dir: pki.pskClientDir, endpoint: "client" })).toThrow(
      `Username qemu not found in PSK file ${pki.pskClientDir}/keys.psk`,
    );
    const empty = join(pki.root, "empty-psk");
    mkdirSync(empty);
    expect(() => reg.add({ "qom-type": "tls-creds-psk", id: "p4", dir: empty, endpoint: "client" })).toThrow(
      `Unable to access credentials ${empty}/keys.psk: No such file or directory`,
    );
    writeFileSync(join(empty, "keys.psk"), "");
  });

  it("ids are unique and well formed; object-del of an unknown id says so", () => {
    const reg = new ObjectRegistry();
    reg.add({ "qom-type": "authz-simple", id: "a", identity: "x" });
    expect(() => reg.add({ "qom-type": "authz-simple", id: "a", identity: "y" })).toThrow("attempt to add duplicate property 'a' to object (type 'container')");
    expect(() => reg.add({ "qom-type": "authz-simple", id: "1a", identity: "y" })).toThrow("Parameter 'id' expects an identifier");
    reg.del("a");
    expect(() => reg.del("a")).toThrow("object 'a' not found");
  });
});
