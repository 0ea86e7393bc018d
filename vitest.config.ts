import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real processes; a loaded 2-core machine needs generous limits.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Every FileHandle is closed on every path: a file that leaves one to the GC fails.
    setupFiles: ["test/helpers/fd-leak-guard.ts"],
    poolOptions: { forks: { execArgv: ["--expose-gc"] } },
  },
});
