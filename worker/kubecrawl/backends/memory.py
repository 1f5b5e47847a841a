"""In-process store for role ``none`` without ``--state-dir``: a heap, a set, a dict. Nothing survives exit."""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ..errors import StorageError
from ..feeds.sink import FeedItem, Sink, make_sink
from ..feeds.spec import FeedSpec, make_spec
from ..request import Request
from .base import (
    NEVER,
    Backend,
    CommitResult,
    FrontierStatus,
    ItemRecord,
    Lease,
    Outcome,
    RoundInfo,
    fingerprint_rule,
    local_worker_id,
)
from .frontier import HostFrontier, Politeness, request_slot

log = logging.getLogger(__name__)


class SeenSet:
    """Request fingerprints → expiry (:data:`~.base.NEVER` for a fingerprint seen without an age)."""

    __slots__ = ("_expires",)

    def __init__(self) -> None:
        self._expires: dict[bytes, float] = {}

    def check_and_add(self, req: Request, default_ttl: float | None, now: float) -> bool:
        """True if ``req`` is admitted (and its fingerprint recorded), by :func:`~.base.fingerprint_rule`."""
        fp = req.fingerprint
        ttl = req.fingerprint_ttl if req.fingerprint_ttl is not None else default_ttl
        expires = self._expires.get(fp)
        if ttl is None:  # the hot path of a crawl without ages: the rule, inlined
            if expires is None:
                self._expires[fp] = NEVER
                return True
            if expires == NEVER:
                return False
        admit, new = fingerprint_rule(expires, ttl, now)
        if new is not None:
            self._expires[fp] = new
        return admit

    def holds(self, fp: bytes, now: float) -> bool:
        """Whether ``fp`` is recorded and its age (if any) has not run out: a request with it is filtered."""
        expires = self._expires.get(fp)
        return expires is not None and expires > now

    def __len__(self) -> int:
        return len(self._expires)


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
    """:class:`Backend` in this process's memory; ``-o`` gets each item as it is stored."""

    def __init__(
        self,
        output: Path | None = None,
        item_dedup: str = "skip",
        fingerprint_ttl: float | None = None,
        *,
        clock: Callable[[], float] | None = None,
        worker_id: str | None = None,
        feeds: list[FeedSpec] | None = None,
        feed_name: str = "items",
        politeness: Politeness | None = None,
    ) -> None:
        self.clock = clock or time.time
        self.worker_id = worker_id or local_worker_id()
        self.frontier = HostFrontier(politeness or Politeness())
        self._queues: dict[str, list[tuple[int, int, Request]]] = {}  # slot -> its heap
        self._queued = 0
        self._seq = itertools.count()
        self._leased: dict[str, tuple[str, tuple[int, int, Request]]] = {}  # lease id -> slot, heap entry
        self._freed: set[str] = set()  # leases whose slot place fetch_done already gave back
        self._lease_seq = itertools.count()
        self.seen = SeenSet()
        self.items = ItemKeys(item_dedup)
        self.item_dedup = item_dedup
        self.fingerprint_ttl = fingerprint_ttl
        self._round = 0
        self._seeded_round = 0
        self._seeding = False
        self.feed_specs = list(feeds or []) + ([make_spec(str(output))] if output is not None else [])
        self.feed_name = feed_name
        self._sinks: list[Sink] = []
        #: items a failing sink has not taken yet (retried with the next batch; nothing survives exit)
        self._pending: dict[int, list[FeedItem]] = {}
        self._item_seq = itertools.count(1)
        self._run_id = uuid.uuid4().hex
        self.stats: dict[str, int] = {}

    def _bind(self, round_no: int) -> list[Sink]:
        return [
            make_sink(
                spec,
                spec.resolve(self.feed_name, round_no),
                name=self.feed_name,
                item_dedup=self.item_dedup,
                origin=self._run_id[:12],
            )
            for spec in self.feed_specs
        ]

    async def open(self) -> None:
        self._sinks = self._bind(self._round + 1)
        for sink in self._sinks:
            sink.open(None)

    def _deliver(self, items: list[FeedItem]) -> None:
        for i, sink in enumerate(self._sinks):
            batch = self._pending.pop(i, []) + items
            if not batch:
                continue
            try:
                sink.write(batch)
            except (StorageError, OSError) as exc:
                log.error("feed %s: write failed (%d item(s) held in memory, retried): %s", sink.uri, len(batch), exc)
                self._pending[i] = batch

    async def close(self) -> None:
        self._deliver([])
        for i, sink in enumerate(self._sinks):
            if self._pending.get(i):
                log.error(
                    "feed %s: %d item(s) could not be written and are lost (no --state-dir)",
                    sink.uri,
                    len(self._pending[i]),
                )
            sink.close()
        self._sinks = []

    async def pop(self, n: int) -> list[Lease]:
        out: list[Lease] = []
        now = self.clock()
        fr = self.frontier
        for key, k in fr.take(now, n):
            heap = self._queues[key]
            got = 0
            while heap and got < k:
                entry = heapq.heappop(heap)
                lid = str(next(self._lease_seq))
                self._leased[lid] = (key, entry)
                out.append(Lease(lid, entry[2]))
                got += 1
            self._queued -= got
            fr.taken(key, got, now, len(heap))
        self.next_ready = fr.next_ready(now)
        return out

    def _push(self, req: Request) -> None:
        key = request_slot(req, self.frontier.policy.slot_key)
        heapq.heappush(self._queues.setdefault(key, []), (-req.priority, next(self._seq), req))
        self._queued += 1
        self.frontier.added(key)

    async def commit(self, outcomes: list[Outcome]) -> CommitResult:
        res = CommitResult()
        now = self.clock()
        # all or nothing: a fingerprint that cannot be computed fails the commit before anything changes
        [req.fingerprint for oc in outcomes for req in oc.requests]  # computed (and cached) for the check
        [req.fingerprint for oc in outcomes for req in oc.mark]
        lines: list[FeedItem] = []
        off = self.item_dedup == "off"
        for oc in outcomes:
            for req in oc.requests:
                if req.dont_filter or self.seen.check_and_add(req, self.fingerprint_ttl, now):
                    self._push(req)
                    res.enqueued += 1
                else:
                    res.filtered += 1
            for req in oc.mark:
                if self.seen.check_and_add(req, self.fingerprint_ttl, now):
                    res.marked += 1
            for rec in oc.items:
                if self.items.admit(rec):
                    seq = next(self._item_seq)
                    lines.append(FeedItem(seq, rec.data, f"{self._run_id}:{seq}".encode() if off else rec.key))
                    res.items_stored += 1
                else:
                    res.items_duplicate += 1
            if oc.lease_id is not None:
                held = self._leased.pop(oc.lease_id, None)
                if held is not None and not self._free_once(oc.lease_id):
                    ago = None if oc.answered is None else time.monotonic() - oc.answered
                    self.frontier.finished(held[0], now, ago, False, oc.crawl_delay, oc.throttle_delay)
            for k, v in oc.stats.items():
                self.stats[k] = self.stats.get(k, 0) + v
        if self._sinks and (lines or self._pending):
            self._deliver(lines)
        return res

    def _free_once(self, lid: str) -> bool:
        """True if ``lid``'s place was already given back by :meth:`fetch_done` (and forget that)."""
        if lid in self._freed:
            self._freed.discard(lid)
            return True
        return False

    def fetch_done(self, oc: Outcome) -> None:
        lid = oc.lease_id
        held = None if lid is None else self._leased.get(lid)
        if held is None or lid is None or lid in self._freed:
            return
        self._freed.add(lid)
        ago = None if oc.answered is None else time.monotonic() - oc.answered
        self.frontier.finished(held[0], self.clock(), ago, False, oc.crawl_delay, oc.throttle_delay)

    async def backoff(self, slot: str, seconds: float) -> None:
        self.frontier.backoff(slot, self.clock(), seconds)

    async def release(self, lease_ids: list[str]) -> None:
        now = self.clock()
        for lid in lease_ids:
            held = self._leased.pop(lid, None)
            if held is not None:
                key, entry = held
                heapq.heappush(self._queues[key], entry)  # back in its place: priority, then original arrival
                self._queued += 1
                if self._free_once(lid):
                    self.frontier.added(key)
                else:
                    self.frontier.finished(key, now, None, requeued=True)

    async def queued(self) -> int:
        return self._queued

    async def in_flight(self) -> int:
        return len(self._leased)

    async def has_fingerprints(self, requests: list[Request]) -> list[bool]:
        return [self.seen.holds(req.fingerprint, self.clock()) for req in requests]

    async def frontier_status(self, top: int = 10) -> FrontierStatus | None:
        return self.frontier.status_cached(top, self.clock())

    async def fingerprint_count(self) -> int:
        return len(self.seen)

    async def begin_round(self) -> int:
        self._round += 1
        self._seeding = True
        if any(spec.templated for spec in self.feed_specs):
            self._deliver([])
            for i, new in enumerate(self._bind(self._round)):
                if new.key != self._sinks[i].key and not self._pending.get(i):
                    self._sinks[i].close()
                    new.open(None)
                    self._sinks[i] = new
        return self._round

    async def end_seeding(self, round_no: int) -> None:
        self._seeded_round = round_no
        self._seeding = False

    async def round_info(self) -> RoundInfo:
        return RoundInfo(self._round, self._seeding, self._seeded_round)
