#!/usr/bin/env python3
"""QMP round-trip latency, measured by a client that is not minivm's (nor JavaScript).

Plain sockets and the standard library only, so that the figures include nothing of
minivm's own client. bench/qmp.ts starts minivm and QEMU and runs this script against
each; it can also be run by hand:

    python3 bench/qmp_latency.py minivm /tmp/m.sock [--n 5000]
    python3 bench/qmp_latency.py qemu /tmp/q.sock [--fifo /tmp/dump.fifo]

Prints one JSON object: for every scenario the p50, p99 and p99.9 round trip in
microseconds and the number of samples.

Scenarios:
  inband          execute query-status, one at a time
  oob             exec-oob of a lock-free command with nothing holding the BQL
                  (minivm x-query-bql, QEMU query-yank)
  oob-bql-held    the same while another connection holds the BQL
                  (minivm: x-oob-test lock=true; QEMU: dump-guest-memory into a FIFO
                  nobody reads, only with --fifo)
  oob-unlock      minivm only: exec-oob x-oob-test lock=false, the command that releases
                  a held lock, timed from send to its own reply; the lock is taken again
                  before each sample
"""

import argparse
import json
import os
import socket
import sys
import threading
import time


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        greeting = self.read()
        caps = greeting["QMP"].get("capabilities", [])
        self.oob = "oob" in caps
        args = {"enable": ["oob"]} if self.oob else {}
        self.call({"execute": "qmp_capabilities", "arguments": args, "id": "caps"})

    def read(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def send(self, msg):
        self.s.sendall(json.dumps(msg).encode() + b"\n")

    def wait(self, ident):
        while True:
            m = self.read()
            if m.get("id") == ident and ("return" in m or "error" in m):
                if "error" in m:
                    raise RuntimeError(f"{ident}: {m['error']}")
                return m["return"]

    def call(self, msg):
        self.send(msg)
        return self.wait(msg["id"])

    def close(self):
        self.s.close()


def percentiles(samples_ns):
    xs = sorted(samples_ns)
    if not xs:
        return {"p50_us": None, "p99_us": None, "p999_us": None, "samples": 0}

    def at(q):
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] / 1000, 1)

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": round(xs[-1] / 1000, 1), "samples": len(xs)}


def timed(c, n, make, warmup=200):
    out = []
    for i in range(warmup + n):
        msg = make(i)
        t0 = time.perf_counter_ns()
        c.call(msg)
        t1 = time.perf_counter_ns()
        if i >= warmup:
            out.append(t1 - t0)
    return out


def inband(i):
    return {"execute": "query-status", "id": i}


def minivm(path, n):
    res = {}
    c = Qmp(path)
    res["inband"] = percentiles(timed(c, n, inband))
    res["oob"] = percentiles(timed(c, n, lambda i: {"exec-oob": "x-query-bql", "id": i}))

    locker = Qmp(path)

    def hold():
        locker.send({"execute": "x-oob-test", "arguments": {"lock": True}, "id": "hold"})
        while c.call({"exec-oob": "x-query-bql", "id": "poll"}).get("holder") != "main-loop":
            pass

    def release(ident="release"):
        c.call({"exec-oob": "x-oob-test", "arguments": {"lock": False}, "id": ident})
        locker.wait("hold")

    hold()
    samples = []
    for i in range(200 + n):
        t0 = time.perf_counter_ns()
        info = c.call({"exec-oob": "x-query-bql", "id": i})
        t1 = time.perf_counter_ns()
        if info.get("holder") != "main-loop":
            raise RuntimeError("the BQL was released during the measurement")
        if i >= 200:
            samples.append(t1 - t0)
    release()
    res["oob-bql-held"] = percentiles(samples)

    samples = []
    rounds = max(200, n // 5)
    for i in range(50 + rounds):
        hold()
        t0 = time.perf_counter_ns()
        c.call({"exec-oob": "x-oob-test", "arguments": {"lock": False}, "id": i})
        t1 = time.perf_counter_ns()
        locker.wait("hold")
        if i >= 50:
            samples.append(t1 - t0)
    res["oob-unlock"] = percentiles(samples)
    locker.close()
    c.close()
    return res


def qemu(path, n, fifo):
    res = {}
    c = Qmp(path)
    res["inband"] = percentiles(timed(c, n, inband))
    if c.oob:
        res["oob"] = percentiles(timed(c, n, lambda i: {"exec-oob": "query-yank", "id": i}))
    if c.oob and fifo:
        # Hold QEMU's main loop (and with it the BQL): dump-guest-memory blocks writing to a
        # FIFO until someone reads it. A -qmp socket takes one client at a time, so the
        # in-band command that holds the lock goes on the same connection as the OOB ones.
        locker = c
        locker.send({"execute": "dump-guest-memory", "arguments": {"paging": False, "protocol": f"file:{fifo}"}, "id": "hold"})
        time.sleep(0.3)
        res["oob-bql-held"] = percentiles(timed(c, n, lambda i: {"exec-oob": "query-yank", "id": i}))

        def drain():
            with open(fifo, "rb") as f:
                while f.read(1 << 20):
                    pass

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        locker.wait("hold")
        t.join()
    c.close()
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["minivm", "qemu"])
    p.add_argument("socket")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--fifo")
    a = p.parse_args()
    res = minivm(a.socket, a.n) if a.kind == "minivm" else qemu(a.socket, a.n, a.fifo)
    json.dump({"client": "python3 raw socket", "target": a.kind, "results": res}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
