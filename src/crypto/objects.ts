// The user-created objects (QEMU's /objects container, qom/object_interfaces.c): `-object`
// on the command line and object-add / object-del over QMP. minivm knows QEMU's TLS
// credentials and authorization types. Credentials are loaded when the object is created,
// so a bad file is an error then; users (a socket, a migration) look objects up by id.

import { QMP_COMMANDS } from "../qapi/generated/commands.js";
import type { ObjectOptions } from "../qapi/generated/types.js";
import { splitOptions } from "../qmp/address.js";
import type { AuthzDefinition } from "./authz.js";
import { loadPsk, loadX509, type TlsCredsMaterial, type TlsEndpoint } from "./tls-creds.js";

interface Entry {
  options: ObjectOptions;
  creds: TlsCredsMaterial | null;
}

/** QEMU's id_wellformed(): a letter, then letters, digits, '-', '.' and '_'. */
function idWellformed(id: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_.-]*$/.test(id);
}

export class ObjectRegistry {
  private readonly objects = new Map<string, Entry>();

  /** `onChange` hears every add and delete (the core thread tells the monitor thread). */
  constructor(private readonly onChange: () => void = () => undefined) {}

  /** user_creatable_add_type: check the id, load credentials, then (only then) insert. */
  add(options: ObjectOptions): void {
    if (!idWellformed(options.id)) throw new Error("Parameter 'id' expects an identifier");
    if (this.objects.has(options.id)) throw new Error(`attempt to add duplicate property '${options.id}' to object (type 'container')`);
    let creds: TlsCredsMaterial | null = null;
    if (options["qom-type"] === "tls-creds-x509") creds = loadX509(options);
    else if (options["qom-type"] === "tls-creds-psk") creds = loadPsk(options);
    this.objects.set(options.id, { options: structuredClone(options), creds });
    this.onChange();
  }

  /** user_creatable_del. Credentials a socket already holds stay with it, as QEMU's references do. */
  del(id: string): void {
    if (!this.objects.delete(id)) throw new Error(`object '${id}' not found`);
    this.onChange();
  }

  list(): ObjectOptions[] {
    return [...this.objects.values()].map((e) => structuredClone(e.options));
  }

  /** The credentials a socket or migration names (char-socket.c, migration/tls.c words). */
  tlsCreds(id: string, endpoint: TlsEndpoint): TlsCredsMaterial {
    const e = this.objects.get(id);
    if (e === undefined) throw new Error(`No TLS credentials with id '${id}'`);
    if (e.creds === null) throw new Error(`Object with id '${id}' is not TLS credentials`);
    if (e.creds.endpoint !== endpoint) throw new Error(`Expected TLS credentials for a ${endpoint} endpoint`);
    return e.creds;
  }

  /** An authorization object, or null when there is none (which denies, as in QEMU). */
  authz(id: string): AuthzDefinition | null {
    const o = this.objects.get(id)?.options;
    if (o === undefined || (o["qom-type"] !== "authz-simple" && o["qom-type"] !== "authz-list")) return null;
    return o as AuthzDefinition;
  }

  /** Every authorization object: what another thread needs to check clients by itself. */
  authzDefinitions(): AuthzDefinition[] {
    return this.list().filter((o): o is AuthzDefinition & ObjectOptions => o["qom-type"] === "authz-simple" || o["qom-type"] === "authz-list");
  }
}

/** A lookup of authorization objects by id, from a copy kept on another thread. */
export type AuthzLookup = (id: string) => AuthzDefinition | null;

export function authzLookupOf(defs: readonly AuthzDefinition[]): AuthzLookup {
  const m = new Map(defs.map((d) => [d.id, d]));
  return (id) => m.get(id) ?? null;
}

const BOOL_PROPS = new Set(["verify-peer", "sanity-check", "loaded", "refresh"]);

/** QEMU's keyval booleans. */
function keyvalBool(key: string, v: string): boolean | string {
  if (!BOOL_PROPS.has(key)) return v;
  if (v === "on" || v === "yes" || v === "true") return true;
  if (v === "off" || v === "no" || v === "false") return false;
  throw new Error(`Parameter '${key}' expects 'on' or 'off'`);
}

/** Dotted keys (`rules.0.match=...`) into nested objects; numeric levels become arrays. */
function nest(flat: Array<[string, string]>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of flat) {
    const path = key.split(".");
    let obj: Record<string, unknown> = root;
    for (const k of path.slice(0, -1)) obj = (obj[k] ??= {}) as Record<string, unknown>;
    const last = path[path.length - 1] as string;
    if (last in obj) throw new Error(`Parameter '${key}' is set more than once`);
    obj[last] = keyvalBool(last, value);
  }
  const arrays = (v: unknown): unknown => {
    if (typeof v !== "object" || v === null) return v;
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
      const out: unknown[] = [];
      for (let i = 0; i < keys.length; i++) {
        if (!(String(i) in o)) throw new Error(`Parameter '${i}' missing in a list`);
        out.push(arrays(o[String(i)]));
      }
      return out;
    }
    for (const k of keys) o[k] = arrays(o[k]);
    return o;
  };
  return arrays(root) as Record<string, unknown>;
}

/**
 * `-object TYPE,id=ID,key=value,...` (QEMU's keyval with the type as implied first key, and
 * dotted keys for lists: `rules.0.match=...`) or `-object '{"qom-type":...}'`, checked by the
 * same generated visitor as object-add.
 */
export function parseObjectOption(text: string): ObjectOptions {
  let raw: Record<string, unknown>;
  if (text.trimStart().startsWith("{")) {
    raw = JSON.parse(text) as Record<string, unknown>;
  } else {
    const parts = splitOptions(text);
    const flat: Array<[string, string]> = [];
    parts.forEach((p, i) => {
      const eq = p.indexOf("=");
      if (i === 0 && eq < 0) flat.push(["qom-type", p]);
      else if (eq < 0) throw new Error(`Expected '=' after parameter '${p}'`);
      else flat.push([p.slice(0, eq), p.slice(eq + 1)]);
    });
    raw = nest(flat);
  }
  const spec = QMP_COMMANDS.get("object-add");
  if (spec === undefined) throw new Error("object-add is missing from the schema");
  return spec.parseArgs(raw) as ObjectOptions;
}
