"""The witness site of ``python -m bench politeness``: one small site per 127.0.0.x address, with a log.

``python -m bench._witness_server --hosts 127.0.0.1,127.0.0.2 --pages 40 --ready R --log L`` binds a
free port on every address (each address is its own host, so its own download slot), serves pages
``/p/<i>.html`` that link to other pages of the same host, and records for every request the address
it arrived on, when it arrived, when its response was written and how many requests that address had
in flight at arrival (the event loop is single-threaded, so the count is exact). The ports go to the
``--ready`` file once every socket listens; on SIGTERM the log goes to ``--log`` as JSON and it exits.
The log is the benchmark's witness: the crawler's own stats are not trusted for politeness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

from aiohttp import web

#: one record per request: (address, path, arrival, response written, in flight at arrival incl. this one, status)
Record = tuple[str, str, float, float, int, int]


def page_bodies(pages: int, links: int, page_kb: int) -> list[bytes]:
    """Page ``i`` links to ``i+1`` (so the start page reaches all) and ``links-1`` others, padded to ~``page_kb``."""
    filler = "<p>" + "politeness crawler host slot delay lease " * 24 + "</p>\n"
    out = []
    for i in range(pages):
        targets = [(i + 1) % pages] + [(i * 7 + j + 2) % pages for j in range(max(0, links - 1))]
        anchors = "".join(f'<li><a href="/p/{t}.html">page {t}</a></li>' for t in targets)
        head = f"<!DOCTYPE html><html><head><title>Page {i}</title></head><body><h1>Page {i}</h1><ul>{anchors}</ul>\n"
        pad = filler * max(0, (page_kb * 1024 - len(head)) // len(filler))
        out.append((head + pad + "</body></html>\n").encode())
    return out


async def serve(hosts: list[str], bodies: list[bytes], latency_s: float, ready: Path, log_path: Path) -> None:
    records: list[Record] = []
    in_flight: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.StreamResponse:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        host = str(sock[0]) if sock else "?"
        t0 = time.monotonic()
        in_flight[host] += 1
        n = in_flight[host]
        status = 0  # 0: the handler failed before it had an answer
        try:
            if latency_s:
                await asyncio.sleep(latency_s)
            name = request.path.rsplit("/", 1)[-1]
            idx = name.removesuffix(".html")
            if request.path.startswith("/p/") and name.endswith(".html") and idx.isdigit() and int(idx) < len(bodies):
                body, status = bodies[int(idx)], 200
            else:
                body, status = b"not found\n", 404
            resp = web.StreamResponse(status=status, headers={"Content-Type": "text/html; charset=utf-8"})
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body)
            await resp.write_eof()
            return resp
        finally:
            in_flight[host] -= 1
            records.append((host, request.path, t0, time.monotonic(), n, status))

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    ports: dict[str, int] = {}
    for host in hosts:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        ports[host] = int(sock.getsockname()[1])
        await web.SockSite(runner, sock, backlog=1024).start()
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ports": ports, "pid": os.getpid()}))
    tmp.rename(ready)  # the reader never sees a half-written file

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()
    log_path.write_text(json.dumps(records))


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench._witness_server")
    p.add_argument("--hosts", required=True, help="comma-separated IPv4 addresses (127.0.0.x)")
    p.add_argument("--pages", type=int, required=True, help="pages per host")
    p.add_argument("--links", type=int, default=5)
    p.add_argument("--page-kb", type=int, default=2)
    p.add_argument("--latency-ms", type=float, default=0.0, help="time each response takes")
    p.add_argument("--ready", type=Path, required=True)
    p.add_argument("--log", type=Path, required=True)
    a = p.parse_args()
    bodies = page_bodies(a.pages, a.links, a.page_kb)
    asyncio.run(serve(a.hosts.split(","), bodies, a.latency_ms / 1000, a.ready, a.log))


if __name__ == "__main__":
    main()
