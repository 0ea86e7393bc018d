// The `--dashboard` address, parsed apart from the server so the command line does not load
// the server's dependencies unless the option is given.

export interface DashboardListen {
  host: string;
  port: number;
}

/** `[HOST:]PORT`, loopback when no host is given (as a TCP monitor binds, DESIGN.md §8). */
export function parseDashboardAddress(text: string): DashboardListen {
  const colon = text.lastIndexOf(":");
  const host = colon < 0 ? "127.0.0.1" : text.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const portText = colon < 0 ? text : text.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new Error(`--dashboard ${text}: expected [HOST:]PORT with PORT 0..65535`);
  if (host === "") throw new Error(`--dashboard ${text}: empty host`);
  return { host, port };
}
