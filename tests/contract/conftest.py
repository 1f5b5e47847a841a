"""The store contract suite's fixtures: one :class:`Stores` kit per store kind, all driven alike.

``stores`` is parametrised over memory, SQLite and Redis (a real ``redis-server`` on a free port, one
per session, a fresh crawl name per test); ``persistent_stores`` over the two that outlive a process;
``fingerprint_stores`` adds Redis with the Bloom filter. Every kit shares one :class:`FakeClock` with
the stores it makes, so fingerprint ages and lease deadlines are stepped, never waited for.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from kubecrawl.backends.base import Backend
from kubecrawl.backends.memory import MemoryBackend
from kubecrawl.backends.redis import RedisBackend
from kubecrawl.backends.sqlite import SQLiteBackend, export_state_items
from kubecrawl.status import export_items
from tests.helpers.redis_server import RedisServer, enqueue_raw, redis_server

__all__ = ["redis_server"]  # the per-test server, for tests that stop it


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Stores:
    """Makes and opens stores of one kind over the same underlying state (SQLite dir, Redis crawl).

    ``await kit.open(**kw)`` is a new backend on that state, as a restarted process would make; memory
    has no state outside the object, so each memory backend is a new crawl.
    """

    def __init__(self, kind: str, tmp: Path, server: RedisServer | None) -> None:
        self.kind = kind
        self.tmp = tmp
        self.server = server
        self.clock = FakeClock()
        self.crawl = f"contract-{uuid.uuid4().hex[:8]}"
        self.opened: list[Backend] = []
        self._outputs: list[Path] = []

    @property
    def persistent(self) -> bool:
        return self.kind != "memory"

    def make(self, **kw: Any) -> Backend:
        kw.setdefault("clock", self.clock)
        if self.kind == "memory":
            out = self.tmp / f"memory-{len(self._outputs)}.jsonl"
            self._outputs.append(out)
            return MemoryBackend(out, **kw)
        if self.kind == "sqlite":
            return SQLiteBackend(self.tmp / "state", **kw)
        assert self.server is not None
        if self.kind == "redis-bloom":
            kw.setdefault("dedup", "bloom")
            kw.setdefault("capacity", 100_000)
        return RedisBackend(aioredis.Redis.from_url(self.server.url), self.crawl, **kw)

    async def open(self, **kw: Any) -> Backend:
        b = self.make(**kw)
        await b.open()
        self.opened.append(b)
        return b

    async def close(self, b: Backend) -> None:
        self.opened.remove(b)
        await b.close()

    def inject_raw(self, payload: bytes, priority: int = 100) -> None:
        """Put a raw queue entry behind the store's back (a hostile writer or a corrupt disk)."""
        if self.kind == "sqlite":
            db = sqlite3.connect(self.tmp / "state" / "state.sqlite3")
            with db:
                # in the download slot of the test requests (BASE's host), as a commit would file it
                db.execute("INSERT INTO queue (prio, data, host) VALUES (?, ?, ?)", (priority, payload, "127.0.0.1"))
            db.close()
            return
        assert self.server is not None and self.kind.startswith("redis")
        enqueue_raw(self.server.client(), self.crawl, "hostile", payload, priority, slot="127.0.0.1")

    def stored_items(self) -> list[dict[str, Any]]:
        """Every item the store holds, in storage order, read the way users read them."""
        out = self.tmp / "export.jsonl"
        if self.kind == "memory":
            assert self._outputs, "no memory store made"
            out = self._outputs[-1]
            if not out.exists():
                return []
        elif self.kind == "sqlite":
            export_state_items(self.tmp / "state", out)
        else:
            assert self.server is not None
            export_items(self.server.client(), self.crawl, out)
        return [orjson.loads(line) for line in out.read_bytes().splitlines()]


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole suite; tests keep apart by crawl name."""
    server = RedisServer(tmp_path_factory.mktemp("contract-redis")).start()
    try:
        yield server
    finally:
        server.stop()


async def _kit(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    server = request.getfixturevalue("shared_redis") if kind.startswith("redis") else None
    kit = Stores(kind, tmp_path, server)
    try:
        yield kit
    finally:
        for b in reversed(kit.opened):
            await b.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    async for kit in _kit(request.param, tmp_path, request):
        yield kit


@pytest.fixture(params=["sqlite", "redis"])
async def persistent_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    async for kit in _kit(request.param, tmp_path, request):
        yield kit


@pytest.fixture
async def redis_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    async for kit in _kit("redis", tmp_path, request):
        yield kit


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-bloom"])
async def fingerprint_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    async for kit in _kit(request.param, tmp_path, request):
        yield kit
