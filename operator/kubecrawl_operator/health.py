"""The operator's probe endpoints, on the `--liveness` address (one HTTP server, two paths).

- liveness (`/healthz`, the path of `--liveness`): 200 while the process does its job: a standby
  keeps trying the Lease, an active replica's kopf event loop answers within a few seconds. 503 when
  kopf's loop is stuck, so the kubelet restarts the container.
- metrics (`/metrics`): Prometheus text of metrics.py (passes, errors, crawls by phase, queue depth).
- readiness (`/readyz`): 200 only on the active replica (holds the Lease, kopf started); a standby
  answers 503 `standby: lease NS/NAME held by POD`. `kubectl get pods` therefore shows the active
  replica READY 1/1 and each standby 0/1.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from kubecrawl_operator.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from kubecrawl_operator.metrics import METRICS

logger = logging.getLogger(__name__)

READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
LOOP_TIMEOUT = 5.0


class HealthState:
    """What the probes report; written by the runner, read by the HTTP server's threads."""

    def __init__(self, lease: str = "") -> None:
        self.role = "starting"  # starting | standby | active | stopping
        self.lease = lease  # "NS/NAME", empty without leader election
        self.holder: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.kopf_stop: asyncio.Event | None = None  # set (in the loop) to stop kopf
        self.kopf_ready = threading.Event()
        self.last_tick = time.monotonic()

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def _loop_answers(self) -> bool:
        loop = self.loop
        if loop is None or loop.is_closed():
            return False
        try:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout=LOOP_TIMEOUT)
        except Exception:  # timeout, closed loop: the operator is not doing its job
            return False
        return True

    def liveness(self, stall_after: float) -> tuple[int, str]:
        if self.role in ("starting", "stopping"):
            return 200, self.role
        if self.role == "standby":
            stalled = time.monotonic() - self.last_tick > stall_after
            return (503, "standby loop stalled") if stalled else (200, "standby")
        if not self.kopf_ready.is_set():
            return 200, "active, starting"
        return (200, "active") if self._loop_answers() else (503, "active, but kopf's event loop does not answer")

    def readiness(self) -> tuple[int, str]:
        if self.role == "active" and self.kopf_ready.is_set() and self._loop_answers():
            return 200, "active" + (f": holds lease {self.lease}" if self.lease else "")
        if self.role == "standby":
            return 503, f"standby: lease {self.lease} held by {self.holder or 'nobody'}"
        if self.role == "active":
            return 503, "active, but kopf has not started or its event loop does not answer"
        return 503, self.role


class HealthServer:
    """A small threaded HTTP server; kopf's own liveness endpoint is not used (it only exists while kopf runs)."""

    def __init__(self, url: str, state: HealthState, stall_after: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "0.0.0.0"
        self.port = parts.port or 8080
        self.live_path = parts.path or "/healthz"
        self.state = state
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == server.live_path:
                    code, text = server.state.liveness(stall_after)
                elif path == READY_PATH:
                    code, text = server.state.readiness()
                elif path == METRICS_PATH:
                    self._send(200, METRICS.render(), METRICS_CONTENT_TYPE)
                    return
                else:
                    code, text = 404, "not found"
                self._send(code, (text + "\n").encode(), "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        logger.info(
            "probes on http://%s:%s (liveness %s, readiness %s, metrics %s)",
            self.host,
            self.port,
            self.live_path,
            READY_PATH,
            METRICS_PATH,
        )
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
