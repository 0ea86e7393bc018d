import { describe, expect, it } from "vitest";
import {
  collapse,
  cyclicComponents,
  describeCycles,
  readImportGraph,
  runtimeSpecifiers,
  type ImportGraph,
  type ModulePath,
} from "./import-graph.js";

// The interpreter's hot loop and its slow paths (traps, CSRs, the MMU walk, PMP) call one
// another by design: TinyEMU's shape, one hot function with the rare paths beside it. These
// files, and only these, may import one another in a cycle.
const INTERPRETER_GROUP: ReadonlySet<ModulePath> = new Set([
  "src/cpu/cpu.ts",
  "src/cpu/memory.ts",
  "src/cpu/mmu.ts",
  "src/cpu/trap.ts",
  "src/cpu/csr.ts",
  "src/cpu/pmp.ts",
]);

/** The folder a module belongs to for layering: src/<folder>, devices, bench, or a top-level file. */
function folderOf(m: ModulePath): string {
  const parts = m.split("/");
  if (parts[0] === "src") return parts.length > 2 ? `src/${parts[1]}` : m;
  return parts[0] as string;
}

const graph = readImportGraph(["src", "devices", "bench"]);

/** The graph without the edges that stay inside the allowed interpreter group. */
function withoutInterpreterCycles(g: ImportGraph): ImportGraph {
  const edges = new Map<ModulePath, ModulePath[]>();
  for (const [from, deps] of g.edges) {
    edges.set(
      from,
      deps.filter((d) => !(INTERPRETER_GROUP.has(from) && INTERPRETER_GROUP.has(d))),
    );
  }
  return { edges };
}

describe("runtime import graph", () => {
  it("reads the source tree, including the interpreter and the monitor", () => {
    expect(graph.edges.get("src/cpu/cpu.ts")?.length).toBeGreaterThan(0);
    expect(graph.edges.get("src/monitor/monitor-worker.ts")).toContain("src/qmp/session.ts");
  });

  it("has no import cycle between folders", () => {
    const folders = collapse(graph, folderOf);
    expect(describeCycles(folders, cyclicComponents(folders))).toEqual([]);
  });

  it("has no import cycle between files outside the interpreter's hot-loop/slow-path group", () => {
    const g = withoutInterpreterCycles(graph);
    expect(describeCycles(g, cyclicComponents(g))).toEqual([]);
  });

  it("names the allowed interpreter group by files that exist", () => {
    for (const f of INTERPRETER_GROUP) expect(graph.edges.has(f), f).toBe(true);
  });
});

describe("the import graph helper", () => {
  it("counts value imports, re-exports and dynamic imports, and skips type-only ones", () => {
    const text = [
      'import { a } from "./a.js";',
      'import type { B } from "./b.js";',
      'import { type C } from "./c.js";',
      'import { type D, e } from "./d.js";',
      'export { f } from "./f.js";',
      'export type { G } from "./g.js";',
      'import "./h.js";',
      'const i = await import("./i.js");',
      'type J = import("./j.js").J;',
    ].join("\n");
    expect(runtimeSpecifiers("x.ts", text)).toEqual(["./a.js", "./d.js", "./f.js", "./h.js", "./i.js"]);
  });

  it("finds and prints a cycle between folders and between files", () => {
    const g: ImportGraph = {
      edges: new Map([
        ["src/a/x.ts", ["src/b/y.ts"]],
        ["src/b/y.ts", ["src/b/z.ts"]],
        ["src/b/z.ts", ["src/a/x.ts"]],
        ["src/c/w.ts", ["src/a/x.ts"]],
      ]),
    };
    expect(describeCycles(g, cyclicComponents(g))).toEqual(["src/a/x.ts -> src/b/y.ts -> src/b/z.ts -> src/a/x.ts"]);
    const folders = collapse(g, folderOf);
    expect(describeCycles(folders, cyclicComponents(folders))).toEqual(["src/a -> src/b -> src/a"]);
  });
});
