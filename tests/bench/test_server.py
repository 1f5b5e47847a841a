"""The benchmark's static server: nginx (or the aiohttp fallback) serves the site on 127.0.0.1 and stops."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.server import StaticServer, find_nginx, nginx_config
from bench.site import generate_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_site(tmp_path_factory.mktemp("bench") / "site", pages=20, page_kb=2, links=5).root


@pytest.mark.parametrize("kind", ["nginx", "aiohttp"])
def test_static_server_serves_pages_and_stops(site: Path, kind: str) -> None:
    if kind == "nginx":
        assert find_nginx() is not None, "nginx must be installed (scripts/setup.sh or apt-get install nginx-light)"
    server = StaticServer(site, kind=kind)
    base = server.start()
    try:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "/p/3.html", timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["content-type"].startswith("text/html")
            assert resp.read() == (site / "p" / "3.html").read_bytes()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/p/999.html", timeout=10)
        assert missing.value.code == 404
    finally:
        server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/p/3.html", timeout=2)


def test_nginx_sends_utf8_charset_so_every_contender_decodes_alike(site: Path) -> None:
    with StaticServer(site, kind="nginx") as server, urllib.request.urlopen(server.base_url + "/p/0.html") as resp:
        assert resp.headers["content-type"] == "text/html; charset=utf-8"


def test_nginx_file_cache_stays_below_the_open_file_limit(tmp_path: Path) -> None:
    # with a cache larger than the limit, nginx fails open() on big sites and try_files answers 404
    import re

    conf = nginx_config(tmp_path, 8080, tmp_path)
    nofile = int(re.search(r"worker_rlimit_nofile (\d+);", conf).group(1))  # type: ignore[union-attr]
    cached = int(re.search(r"open_file_cache max=(\d+)", conf).group(1))  # type: ignore[union-attr]
    assert cached * 2 <= nofile
