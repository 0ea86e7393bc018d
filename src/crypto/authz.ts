// QEMU's authorization objects (authz/simple.c, authz/list.c; qapi/authz.json): given an
// identity (for TLS, the client certificate's distinguished name) they allow or deny it.
// They are plain data, so every thread that checks a client can hold a copy.

import type { AuthZListProperties, AuthZSimpleProperties, QAuthZListFormat } from "../qapi/generated/types.js";

export type AuthzDefinition =
  | ({ "qom-type": "authz-simple"; id: string } & AuthZSimpleProperties)
  | ({ "qom-type": "authz-list"; id: string } & AuthZListProperties);

/** fnmatch(3) without flags, as authz-list's format=glob uses it: `*`, `?` and `[...]`. */
export function globMatch(pattern: string, text: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === "*") re += "[\\s\\S]*";
    else if (ch === "?") re += "[\\s\\S]";
    else if (ch === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith("!");
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = end;
    } else if (ch === "\\" && i + 1 < pattern.length) {
      re += (pattern[++i] as string).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`${re}$`).test(text);
}

function ruleMatches(match: string, format: QAuthZListFormat | undefined, identity: string): boolean {
  return format === "glob" ? globMatch(match, identity) : match === identity;
}

/** Whether `identity` may in: authz-simple is one exact identity; authz-list's first matching rule decides. */
export function authzAllows(def: AuthzDefinition, identity: string): boolean {
  if (def["qom-type"] === "authz-simple") return def.identity === identity;
  for (const rule of def.rules ?? []) {
    if (ruleMatches(rule.match, rule.format, identity)) return rule.policy === "allow";
  }
  return (def.policy ?? "deny") === "allow";
}
