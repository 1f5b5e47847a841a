"""Serve a directory over HTTP on 127.0.0.1 for benchmarks: nginx when available, else aiohttp.

``StaticServer(root).start()`` picks a free port, writes a private nginx config (no access log, no
gzip, keep-alive connections that are not recycled mid-benchmark), starts nginx in the foreground
as a child process, polls until it answers, and ``stop()`` ends it. If nginx is not installed it
is installed with apt-get when running as root; failing that, an aiohttp static server (the
fastest pure-Python option measured here) runs in a subprocess instead.
"""

from __future__ import annotations

import logging
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

_NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_nginx() -> str | None:
    for cand in _NGINX_CANDIDATES:
        path = shutil.which(cand) if "/" not in cand else (cand if os.access(cand, os.X_OK) else None)
        if path:
            return path
    return None


def install_nginx() -> str | None:
    """apt-get install nginx-light (then nginx) when root on Debian/Ubuntu; the binary, or None."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for pkg in ("nginx-light", "nginx"):
        log.info("nginx not found: apt-get install %s", pkg)
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
            res = subprocess.run(["apt-get", "install", "-y", "-qq", pkg], check=False, env=env, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("apt-get failed: %s", exc)
            return None
        if res.returncode == 0 and find_nginx():
            return find_nginx()
    return None


def nginx_config(root: Path, port: int, workdir: Path, workers: int = 1) -> str:
    """A self-contained nginx.conf serving ``root`` on 127.0.0.1:``port``, state kept in ``workdir``."""
    user_line = ""
    if os.geteuid() == 0:
        # workers would drop to 'nobody', who may not be able to traverse the site's parents
        user_line = f"user {pwd.getpwuid(0).pw_name};\n"
    tmp = workdir / "tmp"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    cached = max(256, min(4096, nofile // 4))
    return f"""{user_line}worker_processes {workers};
daemon off;
worker_rlimit_nofile {nofile};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    # cached descriptors count against the worker's open-file limit: past it nginx fails open()
    # and try_files answers 404, so keep the cache well below the limit (at most the hard limit)
    open_file_cache max={cached} inactive=60s;
    open_file_cache_valid 600s;
    gzip off;
    server_tokens off;
    types {{ text/html html; application/json json; text/plain txt; }}
    default_type application/octet-stream;
    charset utf-8;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location / {{ try_files $uri =404; }}
    }}
}}
"""


def wait_http(url: str, deadline_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status); raise if ``proc`` dies or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    delay = 0.005
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"static server exited with code {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
                return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = exc
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise RuntimeError(f"static server did not answer {url} within {deadline_s}s: {last}")


class StaticServer:
    """A static HTTP server for ``root`` on 127.0.0.1; use as a context manager or start()/stop().

    ``kind`` is ``auto`` (nginx, installing it if needed, else aiohttp), ``nginx`` or ``aiohttp``.
    ``base_url`` (``http://127.0.0.1:PORT``) is set once started.
    """

    def __init__(self, root: Path, kind: str = "auto", workers: int = 1) -> None:
        self.root = Path(root).resolve()
        self.kind = kind
        self.workers = workers
        self.port = 0
        self.base_url = ""
        self.server_name = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> str:
        nginx = None
        if self.kind in ("auto", "nginx"):
            nginx = find_nginx() or install_nginx()
            if nginx is None and self.kind == "nginx":
                raise RuntimeError("nginx is not installed and could not be installed")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._workdir = tempfile.TemporaryDirectory(prefix="kc-static-")
        workdir = Path(self._workdir.name)
        if nginx is not None:
            (workdir / "tmp").mkdir()
            conf = workdir / "nginx.conf"
            conf.write_text(nginx_config(self.root, self.port, workdir, self.workers))
            cmd = [nginx, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log")]
            self.server_name = "nginx " + _nginx_version(nginx)
        else:
            cmd = [sys.executable, "-m", "bench._aiohttp_static", str(self.root), str(self.port)]
            self.server_name = "aiohttp static (nginx unavailable)"
        log.info("starting %s on %s serving %s", self.server_name, self.base_url, self.root)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        try:
            wait_http(self.base_url + "/", proc=self._proc)
        except Exception:
            err = self._stderr_tail()
            self.stop()
            raise RuntimeError(f"{self.server_name} failed to start: {err}") from None
        return self.base_url

    def problems(self) -> list[str]:
        """Serious lines of nginx's error log so far (a benchmark whose server failed is not valid)."""
        if self._workdir is None:
            return []
        errlog = Path(self._workdir.name) / "error.log"
        if not errlog.exists():
            return []
        bad = ("[crit]", "[alert]", "[emerg]", "[error]")
        return [line for line in errlog.read_text(errors="replace").splitlines() if any(b in line for b in bad)]

    def _stderr_tail(self) -> str:
        if self._workdir is not None:
            errlog = Path(self._workdir.name) / "error.log"
            if errlog.exists():
                return errlog.read_text()[-2000:]
        return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # nginx: SIGQUIT is the graceful stop of master and workers; aiohttp: SIGTERM
            proc.send_signal(signal.SIGQUIT if self.server_name.startswith("nginx") else signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> StaticServer:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _nginx_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
        return (out.stderr or out.stdout).strip().split("/")[-1]
    except (OSError, subprocess.TimeoutExpired):
        return "?"
