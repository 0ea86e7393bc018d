// QMP commands for user-created objects (qom/qom-qmp-cmds.c): object-add, object-del, the
// /objects container through qom-list, the known types through qom-list-types, and minivm's
// query-objects. Arguments arrive checked by the generated visitors.

import type { QmpHandlers } from "../qapi/generated/commands.js";
import { ObjectType_VALUES } from "../qapi/generated/types.js";
import { genericError, QmpError } from "../qapi/error.js";
import type { ObjectRegistry } from "./objects.js";

export type ObjectHandlers = Pick<QmpHandlers, "object-add" | "object-del" | "query-objects" | "qom-list" | "qom-list-types">;

/** Each concrete type's parent, as QEMU's QOM has them (the abstract parents are listed too). */
const PARENTS: Record<string, string> = {
  "tls-creds-x509": "tls-creds",
  "tls-creds-psk": "tls-creds",
  "tls-creds": "object",
  "authz-simple": "authz",
  "authz-list": "authz",
  authz: "object",
};
const ABSTRACT = new Set(["tls-creds", "authz"]);

function implementsType(type: string, ancestor: string): boolean {
  for (let t: string | undefined = type; t !== undefined; t = PARENTS[t]) if (t === ancestor) return true;
  return false;
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw genericError(e instanceof Error ? e.message : String(e));
  }
}

export function objectHandlers(objects: ObjectRegistry): ObjectHandlers {
  return {
    "object-add": (args) => wrap(() => {
      objects.add(args);
      return {};
    }),
    "object-del": ({ id }) => wrap(() => {
      objects.del(id);
      return {};
    }),
    "query-objects": () => objects.list(),
    "qom-list": ({ path }) => {
      const p = path.replace(/\/+$/, "");
      if (p === "/objects") return [{ name: "type", type: "string" }, ...objects.list().map((o) => ({ name: o.id, type: `child<${o["qom-type"]}>` }))];
      const id = p.startsWith("/objects/") ? p.slice("/objects/".length) : null;
      const o = id === null ? undefined : objects.list().find((x) => x.id === id);
      if (o === undefined) throw new QmpError("DeviceNotFound", `Device '${path}' not found`);
      return [{ name: "type", type: "string" }, ...Object.keys(o).filter((k) => k !== "qom-type" && k !== "id").map((k) => ({ name: k, type: "str" }))];
    },
    "qom-list-types": ({ implements: impl, abstract }) => {
      const all = [...ObjectType_VALUES, ...ABSTRACT];
      return all
        .filter((t) => (abstract === true || !ABSTRACT.has(t)) && (impl === undefined || implementsType(t, impl)))
        .map((name) => ({ name, ...(ABSTRACT.has(name) ? { abstract: true } : {}), parent: PARENTS[name] ?? "object" }));
    },
  };
}
