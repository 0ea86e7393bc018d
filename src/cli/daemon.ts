// QEMU's -daemonize: the process the user started waits until the VM is ready (its monitors
// listen), then exits 0 and leaves the VM running, detached from the terminal and the
// session. Node cannot fork, so the VM is a fresh detached copy of this command; it says
// "ready" over an IPC channel, and until then its stderr reaches the user through ours, so a
// start-up error is reported and becomes our exit status, as with QEMU's daemonize pipe.

import { spawn } from "node:child_process";

const CHILD_ENV = "MINIVM_DAEMON_CHILD";

/** True in the detached copy that runs the VM. */
export function isDaemonChild(): boolean {
  return process.env[CHILD_ENV] === "1" && typeof process.send === "function";
}

/** In the detached copy: tell the waiting parent the VM is up, and let stderr go. */
export function daemonReady(): void {
  // After the parent has gone, stderr is a broken pipe; QEMU points it at /dev/null. Writes
  // then fail with EPIPE, which must not end the VM.
  process.stderr.on("error", () => undefined);
  process.send?.({ kind: "ready" });
  process.disconnect?.();
}

/** In the process the user started: start the detached copy and wait for it. */
export function daemonize(): Promise<number> {
  const script = process.argv[1];
  if (script === undefined) return Promise.resolve(1);
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe", "ipc"],
    env: { ...process.env, [CHILD_ENV]: "1" },
  });
  child.stderr?.on("data", (d: Buffer) => process.stderr.write(d));
  return new Promise<number>((resolve) => {
    child.on("message", (m: { kind?: string }) => {
      if (m.kind !== "ready") return;
      child.removeAllListeners("exit");
      child.stderr?.destroy();
      if (child.connected) child.disconnect();
      child.unref();
      resolve(0);
    });
    child.on("exit", (code) => resolve(code ?? 1));
    child.on("error", (e) => {
      process.stderr.write(`minivm: -daemonize: ${e.message}\n`);
      resolve(1);
    });
  });
}
