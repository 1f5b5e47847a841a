"""Fixtures for the image tests: both images built once per session from the repository's Dockerfiles."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.kubeharness.binaries import BinariesUnavailable, cache_bin_dir, ensure_binaries
from tests.e2e.kubeharness.controlplane import ControlPlane

from .containers import Build, build

#: Figures the tests measure (image sizes, build times), printed at the end of the run.
FIGURES: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "images: builds the real container images with podman/buildah (slow)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("kubecrawl images")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")


def _require_tools() -> None:
    missing = [t for t in ("podman", "buildah", "debootstrap") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install -y buildah podman debootstrap", pytrace=False)


@pytest.fixture(scope="session")
def build_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image-builds")


@pytest.fixture(scope="session")
def worker_image(build_logs: Path) -> Build:
    _require_tools()
    result = build("worker", log_dir=build_logs)
    FIGURES["worker build (s)"] = f"{result.seconds:.1f}"
    return result


@pytest.fixture(scope="session")
def operator_image(build_logs: Path) -> Build:
    _require_tools()
    result = build("operator", log_dir=build_logs)
    FIGURES["operator build (s)"] = f"{result.seconds:.1f}"
    return result


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    """A fresh control plane of the e2e suite (etcd, kube-apiserver, controller-manager) per test module."""
    required = os.environ.get("KUBECRAWL_E2E_REQUIRED") == "1"
    if not required and not (cache_bin_dir() / "kube-apiserver").exists():
        # Building the control plane takes many minutes: only a required run (CI) pays for it here.
        pytest.skip("control plane not built (tests/e2e/build.sh k8s); KUBECRAWL_E2E_REQUIRED=1 builds it")
    try:
        bin_dir = ensure_binaries()
    except BinariesUnavailable as exc:
        if required:
            pytest.fail(f"control plane required (KUBECRAWL_E2E_REQUIRED=1) but unavailable: {exc}")
        pytest.skip(f"no control plane binaries: {exc}")
    cp = ControlPlane.create(bin_dir, Path(tempfile.mkdtemp(prefix="kubecrawl-images-cp-")))
    cp.keep_data = False
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fixture_site(tmp_path: Path) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """A small news site served on 127.0.0.1 (a free port): its base URL and the articles it holds."""
    root = tmp_path / "site"
    root.mkdir()
    articles: dict[str, dict[str, str]] = {}
    links = []
    for i in range(1, 13):
        path = f"/news/{i:03d}.html"
        title, author = f"Story number {i} \u65b0\u95fb", f"Reporter {i % 4}"
        (root / "news").mkdir(exist_ok=True)
        (root / path.lstrip("/")).write_text(
            f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<h1>{title}</h1><p class='author'>{author}</p><p>Body of story {i}.</p>"
            f"<a href='/index.html'>home</a></body></html>",
            encoding="utf-8",
        )
        articles[path] = {"title": title, "author": author}
        links.append(f"<li><a class='story' href='{path}'>{title}</a></li>")
    (root / "index.html").write_text(
        "<html><head><meta charset='utf-8'></head><body><ul>" + "".join(links) + "</ul></body></html>",
        encoding="utf-8",
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", articles
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
