// Unix-domain server sockets that are private from their first moment: bound inside a fresh
// 0700 directory, made 0600, then renamed into place (DESIGN.md §8). QMP monitors and the
// serial console both use them.
import { chmodSync, mkdtempSync, renameSync, rmdirSync, rmSync } from "node:fs";
import type * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** C's strerror() text for a Node system error, as QEMU words its socket failures. */
export function strerror(e: unknown): string {
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  const known: Record<string, string> = {
    ENOENT: "No such file or directory",
    EACCES: "Permission denied",
    EADDRINUSE: "Address already in use",
    ENOTDIR: "Not a directory",
    EROFS: "Read-only file system",
    EADDRNOTAVAIL: "Cannot assign requested address",
  };
  return known[code] ?? (e instanceof Error ? e.message : String(e));
}

/** Listen on `path` with mode 0600; rejects with QEMU's "Failed to bind socket to ..." text. */
export function listenUnixPrivate(server: net.Server, path: string): Promise<void> {
  const privateDir = mkdtempSync(join(tmpdir(), "minivm-sock-"));
  const tmpPath = join(privateDir, "s");
  return new Promise<void>((resolve, reject) => {
    const fail = (e: unknown): void => {
      server.close();
      rmSync(privateDir, { recursive: true, force: true });
      reject(new Error(`Failed to bind socket to ${path}: ${strerror(e)}`));
    };
    server.once("error", fail);
    server.listen(tmpPath, () => {
      try {
        chmodSync(tmpPath, 0o600);
        renameSync(tmpPath, path);
        rmdirSync(privateDir);
        resolve();
      } catch (e) {
        fail(e);
      }
    });
  });
}
