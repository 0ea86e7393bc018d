"""QEMU's own QMP client (python/qemu/qmp from the QEMU source tree) over TLS.

Usage: qmp-tls-client.py HOST PORT CA [CERT KEY]
Prints one JSON object per step: connect, query-status, an out-of-band command, query-name.
A refused connection prints {"step": "connect", "error": ...} and exits 0.
"""
import asyncio
import json
import os
import ssl
import sys

from qemu.qmp import QMPClient


def out(step, **kw):
    print(json.dumps({"step": step, **kw}), flush=True)


async def main(host, port, ca, cert=None, key=None):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    qmp = QMPClient("minivm-tls")
    try:
        await asyncio.wait_for(qmp.connect((host, int(port)), ssl=ctx), 10)
    except Exception as e:  # refused: the handshake, the greeting or the negotiation failed
        out("connect", error=f"{type(e).__name__}: {e}")
        return
    out("connect", value="ok", oob="oob" in qmp.greeting.QMP.capabilities)
    out("query-status", value=await qmp.execute("query-status"))
    out("oob", value=sorted((await qmp.execute("x-query-bql", oob=True)).keys()))
    out("query-name", value=await qmp.execute("query-name"))
    # qemu.qmp 7.2's disconnect() waits forever in StreamWriter.drain() on a TLS stream
    # under Python 3.11 (the same against socat's OpenSSL server), so it gets a bound.
    try:
        await asyncio.wait_for(qmp.disconnect(), 2)
        out("disconnect", value="ok")
    except asyncio.TimeoutError:
        out("disconnect", value="timeout")


asyncio.run(main(*sys.argv[1:]))
sys.stdout.flush()
os._exit(0)
