// The runtime import graph of minivm's own TypeScript, read from the source with the
// TypeScript parser. An edge is an import or re-export that survives compilation: `import
// type`, `export type` and imports whose every name is marked `type` are left out, a
// dynamic `import("...")` with a literal path counts (it loads the module when it runs),
// and a ".js" path resolves to the ".ts" file beside it, as NodeNext resolution does.
// Imports of packages and node: builtins are not edges; only the repository's files are.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import ts from "typescript";

export const REPO_ROOT = path.resolve(import.meta.dirname, "../..");

/** Repository-relative paths with "/" separators, e.g. "src/cpu/cpu.ts". */
export type ModulePath = string;

export interface ImportGraph {
  /** Every module's runtime imports, in source order. */
  readonly edges: ReadonlyMap<ModulePath, readonly ModulePath[]>;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(full));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

function toModulePath(abs: string): ModulePath {
  return path.relative(REPO_ROOT, abs).split(path.sep).join("/");
}

/** Named bindings that are all `type`-qualified bring nothing at runtime. */
function onlyTypes(elements: ts.NodeArray<ts.ImportSpecifier> | ts.NodeArray<ts.ExportSpecifier>): boolean {
  return elements.length > 0 && elements.every((e) => e.isTypeOnly);
}

/** The module specifiers a file loads at runtime. */
export function runtimeSpecifiers(fileName: string, text: string): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            onlyTypes(clause.namedBindings.elements)));
      if (!typeOnly) found.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly =
        node.isTypeOnly ||
        (node.exportClause !== undefined && ts.isNamedExports(node.exportClause) && onlyTypes(node.exportClause.elements));
      if (!typeOnly) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length === 1 &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** Resolve a relative specifier from `from` to a repository .ts file, or null for packages. */
function resolveSpecifier(fromAbs: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  const target = path.resolve(path.dirname(fromAbs), spec);
  const candidates = spec.endsWith(".js") ? [target.slice(0, -3) + ".ts", target] : [target + ".ts", target];
  for (const c of candidates) if (c.endsWith(".ts") && existsSync(c)) return c;
  // A .js or .mjs file of the repository (firmware tools, say) is not TypeScript to walk.
  return null;
}

/** Read the runtime import graph of every .ts file under `dirs` (repository-relative). */
export function readImportGraph(dirs: readonly string[]): ImportGraph {
  const edges = new Map<ModulePath, ModulePath[]>();
  for (const dir of dirs) {
    for (const abs of listTs(path.join(REPO_ROOT, dir))) {
      const deps: ModulePath[] = [];
      for (const spec of runtimeSpecifiers(abs, readFileSync(abs, "utf8"))) {
        const resolved = resolveSpecifier(abs, spec);
        if (resolved !== null) deps.push(toModulePath(resolved));
      }
      edges.set(toModulePath(abs), deps);
    }
  }
  return { edges };
}

/** Every module `entry` loads at runtime, itself included, each with the chain that reached it. */
export function importClosure(graph: ImportGraph, entry: ModulePath): Map<ModulePath, ModulePath[]> {
  const via = new Map<ModulePath, ModulePath[]>([[entry, [entry]]]);
  const queue: ModulePath[] = [entry];
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
    const chain = via.get(m) ?? [m];
    for (const dep of graph.edges.get(m) ?? []) {
      if (via.has(dep)) continue;
      via.set(dep, [...chain, dep]);
      queue.push(dep);
    }
  }
  return via;
}

/** Group modules into nodes (a folder, say) and keep the edges between different groups. */
export function collapse(graph: ImportGraph, group: (m: ModulePath) => string): ImportGraph {
  const edges = new Map<string, string[]>();
  for (const [from, deps] of graph.edges) {
    const g = group(from);
    const list = edges.get(g) ?? [];
    edges.set(g, list);
    for (const dep of deps) {
      const h = group(dep);
      if (h !== g && !list.includes(h)) list.push(h);
    }
  }
  return { edges };
}

/**
 * The strongly connected components with more than one node (or a node importing itself):
 * each is a set of modules that import one another in a cycle. Tarjan's algorithm.
 */
export function cyclicComponents(graph: ImportGraph): ModulePath[][] {
  let counter = 0;
  const index = new Map<ModulePath, number>();
  const low = new Map<ModulePath, number>();
  const stack: ModulePath[] = [];
  const onStack = new Set<ModulePath>();
  const out: ModulePath[][] = [];
  const strong = (v: ModulePath): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.edges.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: ModulePath[] = [];
      let w: ModulePath;
      do {
        w = stack.pop() as ModulePath;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.edges.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of [...graph.edges.keys()].sort()) if (!index.has(v)) strong(v);
  return out;
}

/** One concrete cycle through `start` inside `within` (a cyclic component), for messages. */
export function cycleThrough(graph: ImportGraph, start: ModulePath, within: ReadonlySet<ModulePath>): ModulePath[] {
  const prev = new Map<ModulePath, ModulePath>();
  const queue: ModulePath[] = [start];
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
    for (const dep of graph.edges.get(m) ?? []) {
      if (!within.has(dep)) continue;
      if (dep === start) {
        const path: ModulePath[] = [start];
        for (let at: ModulePath | undefined = m; at !== undefined && at !== start; at = prev.get(at)) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!prev.has(dep)) {
        prev.set(dep, m);
        queue.push(dep);
      }
    }
  }
  return [start];
}

/** Each cyclic component as one readable cycle, "a -> b -> a". */
export function describeCycles(graph: ImportGraph, components: readonly ModulePath[][]): string[] {
  return components.map((c) => cycleThrough(graph, c[0] as ModulePath, new Set(c)).join(" -> "));
}
