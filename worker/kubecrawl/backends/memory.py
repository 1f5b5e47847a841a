"""In-process store for role ``none`` without ``--state-dir``: a heap, a set, a dict. Nothing survives exit."""

from __future__ import annotations

import heapq
import itertools
import time
from pathlib import Path
from typing import IO

from ..request import Request
from .base import Backend, CommitResult, ItemRecord, Lease, Outcome, RoundInfo


class SeenSet:
    """Request fingerprints, with optional per-fingerprint expiry (re-visit age)."""

    __slots__ = ("_expiring", "_plain")

    def __init__(self) -> None:
        self._plain: set[bytes] = set()
        self._expiring: dict[bytes, float] = {}

    def check_and_add(self, req: Request, default_ttl: float | None, now: float) -> bool:
        """True if ``req`` is new (and now recorded); False if it was seen and has not expired."""
        fp = req.fingerprint
        ttl = req.fingerprint_ttl if req.fingerprint_ttl is not None else default_ttl
        if ttl is None:
            if fp in self._plain or self._expiring.get(fp, 0.0) > now:
                return False
            self._plain.add(fp)
            return True
        if fp in self._plain:
            # first seen without expiry; from now on it expires
            self._plain.discard(fp)
            self._expiring[fp] = now + ttl
            return False
        if self._expiring.get(fp, 0.0) > now:
            return False
        self._expiring[fp] = now + ttl
        return True

    def __len__(self) -> int:
        return len(self._plain) + len(self._expiring)


class ItemKeys:
    """Content fingerprints of stored items (``skip``) or key → content hash (``update``)."""

    __slots__ = ("_keys", "mode")

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._keys: dict[bytes, bytes] = {}

    def admit(self, rec: ItemRecord) -> bool:
        if self.mode == "off":
            return True
        old = self._keys.get(rec.key)
        if old is None or (self.mode == "update" and old != rec.content_hash):
            self._keys[rec.key] = rec.content_hash
            return True
        return False


class MemoryBackend(Backend):
    def __init__(
        self,
        output: Path | None = None,
        item_dedup: str = "skip",
        fingerprint_ttl: float | None = None,
    ) -> None:
        self._heap: list[tuple[int, int, Request]] = []
        self._seq = itertools.count()
        self._leased: dict[str, Request] = {}
        self._lease_seq = itertools.count()
        self.seen = SeenSet()
        self.items = ItemKeys(item_dedup)
        self.item_dedup = item_dedup
        self.fingerprint_ttl = fingerprint_ttl
        self._round = 0
        self._seeding = False
        self._output_path = output
        self._out: IO[bytes] | None = None
        self.stats: dict[str, int] = {}

    async def open(self) -> None:
        if self._output_path is not None:
            self._output_path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self._output_path, "ab")  # noqa: SIM115 - closed in close()

    async def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    async def pop(self, n: int) -> list[Lease]:
        out: list[Lease] = []
        heap = self._heap
        while heap and len(out) < n:
            _, _, req = heapq.heappop(heap)
            lid = str(next(self._lease_seq))
            self._leased[lid] = req
            out.append(Lease(lid, req))
        return out

    def _push(self, req: Request) -> None:
        heapq.heappush(self._heap, (-req.priority, next(self._seq), req))

    async def commit(self, outcomes: list[Outcome]) -> CommitResult:
        res = CommitResult()
        now = time.time()
        lines: list[bytes] = []
        for oc in outcomes:
            for req in oc.requests:
                if req.dont_filter or self.seen.check_and_add(req, self.fingerprint_ttl, now):
                    self._push(req)
                    res.enqueued += 1
                else:
                    res.filtered += 1
            for rec in oc.items:
                if self.items.admit(rec):
                    lines.append(rec.data)
                    res.items_stored += 1
                else:
                    res.items_duplicate += 1
            if oc.lease_id is not None:
                self._leased.pop(oc.lease_id, None)
            for k, v in oc.stats.items():
                self.stats[k] = self.stats.get(k, 0) + v
        if lines and self._out is not None:
            self._out.write(b"\n".join(lines) + b"\n")
            self._out.flush()
        return res

    async def release(self, lease_ids: list[str]) -> None:
        for lid in lease_ids:
            req = self._leased.pop(lid, None)
            if req is not None:
                self._push(req)

    async def queued(self) -> int:
        return len(self._heap)

    async def in_flight(self) -> int:
        return len(self._leased)

    async def begin_round(self) -> int:
        self._round += 1
        self._seeding = True
        return self._round

    async def end_seeding(self, round_no: int) -> None:
        self._seeding = False

    async def round_info(self) -> RoundInfo:
        return RoundInfo(self._round, self._seeding)
