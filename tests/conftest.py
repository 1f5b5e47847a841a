"""Fixtures shared by every test layer: real HTTP servers on 127.0.0.1 and in-process crawls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.httpserver import TestHTTPServer


@pytest.fixture
def http_server() -> Iterator[TestHTTPServer]:
    server = TestHTTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_http_server() -> Iterator[Any]:
    servers: list[TestHTTPServer] = []

    def make(host: str = "127.0.0.1", port: int = 0) -> TestHTTPServer:
        s = TestHTTPServer(host, port).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()
