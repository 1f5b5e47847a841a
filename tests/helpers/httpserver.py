"""A real HTTP server on 127.0.0.1 for tests: routes are plain functions, every request is logged.

Threaded stdlib server: no mock of HTTP anywhere. ``Route`` handlers get the request path and return
``(status, headers, body)``; a handler may sleep (slow pages) or stream (huge bodies).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, Any], bytes | Iterable[bytes]]  # a list value repeats the header field
Handler = Callable[["RequestInfo"], Reply]


class RequestInfo:
    def __init__(self, method: str, path: str, headers: dict[str, str], hits: int, body: bytes = b"") -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.hits = hits  # how many times this path was requested, this one included
        self.body = body  # the request body as received


class TestHTTPServer:
    """Start with ``start()``; ``url(path)``; ``log`` lists ``(method, path)`` in arrival order.

    ``timeline`` holds ``(path, start, end)`` per request in ``time.monotonic()`` seconds: when the
    server had the request (headers parsed) and when it had written the whole reply; the witness of
    politeness tests. ``bind`` is any loopback address (all of 127/8 is loopback): one host per server.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # any 127.0.0.0/8 address: a second "machine" on loopback
        self.timeline: list[tuple[str, float, float]] = []
        self.routes: dict[str, Handler] = {}
        self.fallback: Handler | None = None
        self.log: list[tuple[str, str]] = []
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def html(
        self, path: str, body: str | bytes, status: int = 200, content_type: str = "text/html; charset=utf-8"
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = lambda _req: (status, {"Content-Type": content_type}, data)

    def start(self) -> TestHTTPServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                t0 = time.monotonic()
                try:
                    self._reply()
                finally:
                    with server._lock:
                        server.timeline.append((self.path, t0, time.monotonic()))

            def _reply(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                received = self.rfile.read(length) if length else b""
                path = self.path
                with server._lock:
                    server.log.append((self.command, path))
                    server.hits[path] += 1
                    hits = server.hits[path]
                handler = server.routes.get(path) or server.fallback
                if handler is None:
                    status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
                else:
                    status, headers, body = handler(RequestInfo(self.command, path, dict(self.headers), hits, received))
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        for one in v if isinstance(v, list) else [v]:  # a list: the field repeated
                            self.send_header(k, one)
                    if isinstance(body, bytes):
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    else:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for chunk in body:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_POST = _serve
            do_HEAD = _serve
            do_PUT = _serve

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up mid-response (timeouts, size limits) are expected

        httpd = _Server((self.host, 0), _Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def paths(self, method: str = "GET") -> list[str]:
        with self._lock:
            return [p for m, p in self.log if m == method]


def slow(seconds: float, reply: Reply) -> Handler:
    def handler(_req: RequestInfo) -> Reply:
        time.sleep(seconds)
        return reply

    return handler


def generated_site(
    server: TestHTTPServer, pages: int, links: int = 10, delay: float = 0.0, prefix: str = "/gen"
) -> set[str]:
    """Register ``pages`` connected pages ``/gen/<i>.html`` (each links to ``links`` others); returns their paths."""

    def page(req: RequestInfo) -> Reply:
        i = int(req.path.rsplit("/", 1)[1].split(".")[0])
        if delay:
            time.sleep(delay)
        out = "".join(f'<a href="{prefix}/{(i * 7 + j + 1) % pages}.html">p{j}</a> ' for j in range(links))
        nxt = f'<a href="{prefix}/{(i + 1) % pages}.html">next</a>'
        body = f"<html><head><title>Page {i}</title></head><body><h1>Page {i}</h1>{out}{nxt}</body></html>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode()

    for i in range(pages):
        server.route(f"{prefix}/{i}.html", page)
    return {f"{prefix}/{i}.html" for i in range(pages)}


def forward_proxy(server: TestHTTPServer) -> TestHTTPServer:
    """Make ``server`` a plain-HTTP forward proxy: a request in absolute form (``GET http://host/path``,
    what a client sends to a proxy) is fetched from its origin and the answer relayed; ``server.log``
    lists the absolute URLs it was asked for."""
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a proxy relays a redirect; the client follows it

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-authorization", "host"}

    def relay(req: RequestInfo) -> Reply:
        if not req.path.startswith("http://"):
            return 400, {"Content-Type": "text/plain"}, b"not a proxy request"
        headers = {k: v for k, v in req.headers.items() if k.lower() not in hop}
        upstream = urllib.request.Request(req.path, data=req.body or None, headers=headers, method=req.method)
        try:
            with opener.open(upstream, timeout=30) as r:
                status, got, body = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, got, body = e.code, e.headers, e.read()
        out: dict[str, Any] = {}
        for k, v in got.items():
            if k.lower() not in hop:
                out.setdefault(k, []).append(v)
        out["Via"] = "1.1 test-proxy"
        return status, out, body

    server.fallback = relay
    return server
