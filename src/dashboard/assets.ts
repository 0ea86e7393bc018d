// What the dashboard serves: its own page (src/dashboard/page/, shipped with the package) and
// the browser builds of xterm.js and uPlot straight from node_modules, so the page needs no
// network beyond this server (DESIGN.md §7: it works offline, no CDN).

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

/**
 * A file of the dashboard's own page: beside this module when running from src/ (tests), in
 * the package's src/dashboard/page when running the built dist/src/dashboard/server.js.
 */
export function assetPath(name: string): string {
  for (const up of ["./page/", "../../../src/dashboard/page/"]) {
    const p = fileURLToPath(new URL(up + name, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`the dashboard's page file ${name} is missing from the installation`);
}

interface Asset {
  file: string;
  type: string;
}

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

function lazy(resolve: () => string, type: string): Asset {
  let file: string | null = null;
  return {
    get file(): string {
      file ??= resolve();
      return file;
    },
    type,
  };
}

/** URL path -> file. Only these paths exist; nothing else on disk is reachable. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/app.js", lazy(() => assetPath("app.js"), JS)],
  ["/lanes.js", lazy(() => assetPath("lanes.js"), JS)],
  ["/panels.js", lazy(() => assetPath("panels.js"), JS)],
  ["/style.css", lazy(() => assetPath("style.css"), CSS)],
  // xterm.js's UMD build defines window.Terminal; uPlot's IIFE build defines window.uPlot.
  ["/vendor/xterm.js", lazy(() => require.resolve("@xterm/xterm/lib/xterm.js"), JS)],
  ["/vendor/xterm.css", lazy(() => require.resolve("@xterm/xterm/css/xterm.css"), CSS)],
  ["/vendor/uPlot.js", lazy(() => require.resolve("uplot/dist/uPlot.iife.min.js"), JS)],
  ["/vendor/uPlot.css", lazy(() => require.resolve("uplot/dist/uPlot.min.css"), CSS)],
]);
