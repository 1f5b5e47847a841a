"""The one small interface every store implements: memory, SQLite (``--state-dir``) and Redis.

A store owns the request queue, the request fingerprints, the leases of in-flight requests, the item
store with its content fingerprints, the stats counters and the round metadata. The engine talks to
it through two batched calls on the hot path:

* :meth:`Backend.pop` takes up to N requests and leases them (in flight until acked);
* :meth:`Backend.commit` applies the outcome of many finished requests atomically: new requests are
  deduplicated and enqueued, items are content-deduplicated and stored, leases are acked and counters
  added. A crash between two commits loses nothing: un-acked leases go back to the queue.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..request import Request


@dataclass(slots=True)
class Lease:
    """A popped request, in flight until its id is acked (committed) or released."""

    id: str
    request: Request


@dataclass(slots=True)
class ItemRecord:
    """An item ready to store: its JSON, its content key and (for ``update`` mode) content hash."""

    data: bytes
    key: bytes
    content_hash: bytes

    @classmethod
    def build(cls, item: dict[str, Any], key_fields: list[str]) -> ItemRecord:
        data = orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS, default=str)
        values = [item.get(f) for f in key_fields]
        if all(v is None for v in values):
            key_src = orjson.dumps(item, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
        else:
            key_src = orjson.dumps(values, default=str)
        content = orjson.dumps(item, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
        return cls(data, hashlib.sha1(key_src).digest(), hashlib.sha1(content).digest())


@dataclass(slots=True)
class Outcome:
    """What one finished request produced (or, with ``lease_id=None``, a batch of seeds)."""

    lease_id: str | None
    requests: list[Request] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class CommitResult:
    enqueued: int = 0
    filtered: int = 0
    items_stored: int = 0
    items_duplicate: int = 0


@dataclass(slots=True)
class RoundInfo:
    round: int
    seeding: bool


@dataclass(slots=True)
class StoreHealth:
    """What a liveness probe needs to know about the store: reachable and accepting commits."""

    ok: bool
    detail: str = "ok"


class Backend(ABC):
    """Queue + fingerprints + leases + items + stats + round metadata of one crawl."""

    #: whether items committed here are exported to ``--output`` by the backend itself
    writes_output: bool = True

    item_dedup: str = "skip"  # skip / update / off

    #: who holds this store's leases: stable per pod in Redis, unique per process locally
    worker_id: str = "local"

    #: wall clock (epoch seconds) for fingerprint ages; tests inject a fake one
    clock: Callable[[], float] = staticmethod(time.time)

    #: hostile or corrupt queue entries this process rejected (counted, never fetched)
    rejected: int = 0

    def counters(self) -> dict[str, int]:
        """Store-side counters of this process for metrics and the summary (rejected, reaped, round_trips)."""
        return {"rejected": self.rejected}

    async def health(self) -> StoreHealth:
        """Whether the store answers now (one cheap probe; never waits out an outage)."""
        return StoreHealth(True)

    async def open(self) -> None:
        """Connect / create schema; reclaim leases that a previous run of this worker left."""

    async def close(self) -> None:
        """Release resources; leases still held are released first by the engine."""

    @abstractmethod
    async def pop(self, n: int) -> list[Lease]:
        """Take and lease up to ``n`` requests, highest priority first (FIFO within a priority)."""

    @abstractmethod
    async def commit(self, outcomes: list[Outcome]) -> CommitResult:
        """Apply many outcomes at once (see module docstring)."""

    @abstractmethod
    async def release(self, lease_ids: list[str]) -> None:
        """Put leased requests back in the queue unprocessed (graceful stop)."""

    @abstractmethod
    async def queued(self) -> int:
        """Requests waiting in the queue."""

    @abstractmethod
    async def in_flight(self) -> int:
        """Requests leased and not yet acked, by any worker."""

    @abstractmethod
    async def begin_round(self) -> int:
        """Start seeding a new round; returns its number (1, 2, ...)."""

    @abstractmethod
    async def end_seeding(self, round_no: int) -> None:
        """Record that seeding of ``round_no`` is complete."""

    @abstractmethod
    async def round_info(self) -> RoundInfo:
        """The last round seeded (0 = never) and whether seeding is under way."""

    async def is_complete(self) -> bool:
        """The round is complete: seeded, nothing queued, nothing in flight."""
        info = await self.round_info()
        return info.round >= 1 and not info.seeding and await self.queued() == 0 and await self.in_flight() == 0

    async def heartbeat(self, worker_id: str) -> None:
        """Record that this worker is alive (shared stores only)."""
