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
import logging
import math
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..request import Request

#: the busiest download slots the status and ``/metrics`` read (``kubecrawl status`` prints 5)
FRONTIER_TOP = 10


@dataclass(frozen=True, slots=True)
class HostLoad:
    """One download slot of the frontier, as the status shows its busiest ones."""

    slot: str
    queued: int
    in_flight: int
    #: seconds: the randomised delay chosen at its last pop (None: no delay chosen yet)
    delay: float | None = None
    #: seconds: its robots.txt Crawl-delay, a floor under the delay (None: none)
    crawl_delay: float | None = None
    #: seconds until its next-allowed time (0: now)
    next_in: float = 0.0


@dataclass(frozen=True, slots=True)
class FrontierStatus:
    """How many slots have work (queued or leased requests) and the busiest of them, most work first."""

    hosts: int = 0
    busiest: list[HostLoad] = field(default_factory=list)


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
    #: ``time.monotonic()`` when the lease's fetch was answered (its last attempt ended; None: nothing
    #: was sent); the store measures the slot's next-allowed time from it (docs/distributed.md)
    answered: float | None = None
    #: the slot's robots.txt ``Crawl-delay`` (seconds) as this worker read it, if it has one
    crawl_delay: float | None = None
    #: the slot's AutoThrottle delay (seconds) as this worker adapted it, if AutoThrottle is on: the
    #: store keeps it per slot as another floor under the delay, for every worker
    throttle_delay: float | None = None
    #: fingerprints to record as seen without enqueuing anything (``kubecrawl.queue.FingerprintSet.add``):
    #: the same admission rule as ``requests``, counted in :attr:`CommitResult.marked` when new
    mark: list[Request] = field(default_factory=list)


#: stored expiry of a fingerprint seen without an age: it never expires
NEVER = math.inf


def fingerprint_rule(expires: float | None, ttl: float | None, now: float) -> tuple[bool, float | None]:
    """The fingerprint-age rule every store applies (docs/contracts.md §6); SQLite and Redis restate it in SQL and Lua.

    ``expires`` is what the store holds for the fingerprint: ``None`` if never seen, :data:`NEVER` if
    seen without an age, else the time its age runs out. ``ttl`` is the request's age (``None``: none).
    Returns whether the request is admitted and the expiry to store from now on (``None``: unchanged).

    * never seen, or its age has run out: admitted; stored with this request's age (none: never expires);
    * seen and not expired: filtered; but a fingerprint first seen without an age that is now asked for
      with one starts ageing from now (so it is fetched again once that age has passed).
    """
    new = NEVER if ttl is None else now + ttl
    if expires is None or expires <= now:
        return True, new
    if expires == NEVER and ttl is not None:
        return False, new
    return False, None


@dataclass(slots=True)
class CommitResult:
    enqueued: int = 0
    filtered: int = 0
    items_stored: int = 0
    items_duplicate: int = 0
    #: fingerprints of :attr:`Outcome.mark` that were new (recorded now)
    marked: int = 0


@dataclass(slots=True)
class RoundInfo:
    """Where the crawl is in its rounds, the same on every store.

    ``round`` is the last round begun (0 = never), ``seeding`` whether that round's seeding is still
    under way (not finished, or interrupted), ``seeded_round`` the last round whose seeding finished.
    """

    round: int
    seeding: bool
    seeded_round: int = 0


#: what a robots.txt answer was (RobotsEntry.kind): a body to parse, everything allowed (4xx, a
#: redirect off the web, refused by the SSRF guard), or unavailable (5xx, 429, network error, timeout)
ROBOTS_KINDS = frozenset({"ok", "allow", "unavailable"})


@dataclass(slots=True, frozen=True)
class RobotsEntry:
    """One origin's robots.txt as a worker read it, for the other workers of the crawl (docs/contracts.md).

    ``body`` is the text every worker parses (the first 500 KiB as fetched, decoded as UTF-8 with
    invalid bytes replaced); empty unless ``kind`` is ``ok``. ``why`` says why it was unavailable.
    ``fetched_at`` and ``expires`` are the store's clock (epoch seconds)."""

    kind: str
    body: str
    fetched_at: float
    expires: float
    why: str = ""


#: the largest stored robots.txt entry read back: a 500 KiB body as JSON text is at most 6 bytes a
#: byte (a control character escaped as \u0000), plus room for the other fields
ROBOTS_ENTRY_MAX = 6 * 500 * 1024 + 4096


def robots_entry_json(entry: RobotsEntry) -> bytes:
    """The stored form of a robots.txt entry: JSON, never pickle (docs/contracts.md §3)."""
    return orjson.dumps(
        {"kind": entry.kind, "body": entry.body, "at": entry.fetched_at, "exp": entry.expires, "why": entry.why}
    )


def robots_entry_from_json(raw: bytes | str) -> RobotsEntry:
    """Parse a stored robots.txt entry; anything else raises :class:`~kubecrawl.errors.WireFormatError`."""
    from ..errors import WireFormatError

    if len(raw) > ROBOTS_ENTRY_MAX:
        raise WireFormatError(f"robots.txt entry of {len(raw)} bytes (at most {ROBOTS_ENTRY_MAX})")
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireFormatError(f"robots.txt entry is not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise WireFormatError(f"robots.txt entry is a JSON {type(d).__name__}, not an object")
    kind, body, at, exp, why = d.get("kind"), d.get("body"), d.get("at"), d.get("exp"), d.get("why", "")
    if kind not in ROBOTS_KINDS:
        raise WireFormatError(f"robots.txt entry of unknown kind {str(kind)[:40]!r}")
    if not isinstance(body, str) or not isinstance(why, str):
        raise WireFormatError("robots.txt entry: body and why must be strings")
    times: list[float] = []
    for v in (at, exp):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise WireFormatError("robots.txt entry: at and exp must be finite numbers")
        times.append(float(v))
    return RobotsEntry(kind, body, times[0], times[1], why[:500])


@dataclass(slots=True)
class StoreHealth:
    """What a liveness probe needs to know about the store: reachable and accepting commits."""

    ok: bool
    detail: str = "ok"


def local_worker_id() -> str:
    """A lease owner id unique to this process (local stores: leases never outlive the process)."""
    return f"local-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Backend(ABC):
    """Queue + fingerprints + leases + items + stats + round metadata of one crawl.

    docs/contracts.md ("The store") states the behaviour every implementation shares;
    ``tests/contract/`` checks it on memory, SQLite and Redis. The scheduler is the only caller.
    """

    #: whether items committed here are exported to ``--output`` by the backend itself
    writes_output: bool = True

    #: set when the store can go on but the crawl must not (a feed's disk is full): the scheduler
    #: stops the crawl with this reason, exit 1, after the commit that found it (nothing is lost)
    fatal: str | None = None

    item_dedup: str = "skip"  # skip / update / off

    #: who holds this store's leases: stable per pod in Redis, unique per process locally
    worker_id: str = "local"

    #: wall clock (epoch seconds) for fingerprint ages; tests inject a fake one (``clock=``)
    clock: Callable[[], float] = staticmethod(time.time)

    #: hostile or corrupt queue entries this process rejected (counted, never fetched)
    rejected: int = 0
    #: expired leases of other workers this process put back in the queue (shared stores)
    reaped: int = 0
    #: leases a previous run of this worker held, put back in the queue at :meth:`open`
    reclaimed: int = 0
    #: after :meth:`pop`: seconds until the earliest download slot with queued work and a free
    #: concurrency slot is ready (0: now), or None when no slot is (all busy, or nothing queued)
    next_ready: float | None = None

    def counters(self) -> dict[str, int]:
        """Store-side counters of this process, for metrics and the summary.

        Always ``rejected``, ``reaped`` and ``reclaimed``; Redis adds ``round_trips``. The caller
        reports them as they are (monotonic within a process); it never resets them.
        """
        return {"rejected": self.rejected, "reaped": self.reaped, "reclaimed": self.reclaimed}

    async def health(self) -> StoreHealth:
        """Whether the store answers now: one cheap probe, bounded by a short timeout.

        Never waits out an outage (unlike the hot-path calls): the health server turns ``ok=False``
        into a 503 with ``detail`` as the body, and the caller carries on.
        """
        return StoreHealth(True)

    async def open(self) -> None:
        """Connect / create the schema; put back in the queue the leases a previous run of this worker left.

        Called once before any other method. Raises :class:`~kubecrawl.errors.StorageError` when the
        store cannot be used; the caller stops the process with that message.
        """

    async def close(self) -> None:
        """Flush and release resources. The caller releases the leases it still holds first."""

    @abstractmethod
    async def pop(self, n: int) -> list[Lease]:
        """Take and lease up to ``n`` requests of ready download slots, by priority within a slot.

        Only slots whose next-allowed time has passed and that have a free concurrency slot give
        requests (backends/frontier.py); within a slot highest priority first, FIFO within a priority.
        Sets :attr:`next_ready`.

        The caller fetches each leased request and, later, either commits an :class:`Outcome` with the
        lease id (ack) or releases it. An empty list means nothing is queued right now (other workers may
        still add work). Entries that cannot be decoded are dropped, counted in ``rejected`` and never
        returned, so fewer than ``n`` may come back while more are queued.
        """

    @abstractmethod
    async def commit(self, outcomes: list[Outcome]) -> CommitResult:
        """Apply many outcomes atomically: all of them or none.

        For each outcome: its requests are admitted or filtered by fingerprint (``dont_filter`` always
        admits; a fingerprint age applies as docs/contracts.md says), its items are admitted or
        counted as duplicates by ``item_dedup``, its lease (if any) is acked and its stats added to the
        crawl's counters. The caller adds the :class:`CommitResult` counts to its stats and forgets the
        acked leases; on an exception nothing was applied and the leases are still held.
        """

    async def commit_pop(self, outcomes: list[Outcome], n: int) -> tuple[CommitResult, list[Lease]]:
        """:meth:`commit` then :meth:`pop` (``n`` > 0), as one call where the store can (Redis: one
        round trip, the pop handing out the places the acks freed). An exception means nothing was
        committed: here, a pop that fails after the commit gives no leases instead (the caller's next
        pop meets that error again and handles it), so a committed outcome is never committed twice."""
        res = await self.commit(outcomes) if outcomes else CommitResult()
        if n <= 0:
            return res, []
        try:
            return res, await self.pop(n)
        except Exception as exc:
            logging.getLogger(__name__).debug("pop after a commit failed (the next pop retries): %r", exc)
            return res, []

    async def backoff(self, slot: str, seconds: float) -> None:
        """The site of ``slot`` asked to slow down (429, or 503 with ``Retry-After``): the slot gives
        no request to any worker before ``seconds`` from now (a later next-allowed time it has already
        is kept); other slots are not affected. One call (Redis: one round trip, one attempt, no outage
        wait): the caller logs and counts a failure and carries on."""
        raise NotImplementedError(f"{type(self).__name__} cannot back off a slot")

    def stopping(self) -> None:
        """The process is stopping: a store that waits out outages gives up soon (signals are honoured)."""

    def fetch_done(self, oc: Outcome) -> None:
        """The fetch of a lease is over (its outcome is not committed yet): a store in this process may
        free the lease's download-slot place now instead of at the ack. Shared stores do nothing (the
        place is freed by the ack: telling them earlier would cost a round trip)."""

    @abstractmethod
    async def release(self, lease_ids: list[str]) -> None:
        """Put leased requests back in the queue unprocessed (graceful stop, or work not started).

        Unknown ids and leases this worker no longer owns are ignored. The caller forgets the ids.
        """

    @abstractmethod
    async def queued(self) -> int:
        """Requests waiting in the queue (not leased). The caller uses it for idleness and progress."""

    @abstractmethod
    async def in_flight(self) -> int:
        """Requests leased and not yet acked: by this process (local stores) or any worker (Redis)."""

    @abstractmethod
    async def begin_round(self) -> int:
        """Start round ``round + 1`` with seeding under way; returns its number (1, 2, ...).

        The caller then commits the round's start requests and calls :meth:`end_seeding`.
        """

    @abstractmethod
    async def end_seeding(self, round_no: int) -> None:
        """Record that seeding of ``round_no`` is complete (``seeded_round = round_no``, not seeding)."""

    @abstractmethod
    async def round_info(self) -> RoundInfo:
        """The round state (see :class:`RoundInfo`).

        A local run resumes the last round instead of seeding a new one when it is ``round >= 1``, not
        ``seeding`` and requests are queued; the status reader shows it.
        """

    async def is_complete(self) -> bool:
        """The last round begun is complete: its seeding finished, nothing queued, nothing in flight.

        ``--exit-when-idle`` workers exit when this is true.
        """
        info = await self.round_info()
        return info.round >= 1 and not info.seeding and await self.queued() == 0 and await self.in_flight() == 0

    async def has_fingerprints(self, requests: list[Request]) -> list[bool]:
        """For each request, whether the store holds its fingerprint now: a commit would filter it
        (``dont_filter`` aside). Read only; ``kubecrawl.queue.FingerprintSet`` is the caller."""
        raise NotImplementedError(f"{type(self).__name__} cannot read fingerprints")

    async def fingerprint_count(self) -> int:
        """How many request fingerprints the crawl has recorded (Redis: its ``seen`` counter)."""
        raise NotImplementedError(f"{type(self).__name__} cannot count fingerprints")

    #: whether :meth:`robots_put` keeps robots.txt for other processes (memory: no, the downloader's
    #: own copy is the only one a single process needs)
    shares_robots: bool = False

    async def robots_get(self, origin: str) -> RobotsEntry | None:
        """The stored robots.txt of ``origin`` (``scheme://host[:port]``) if it has not expired, else None.

        One attempt, bounded by a short timeout, no outage wait: the caller fetches robots.txt itself
        when this raises. A stored entry that is not one (corrupt, hostile) raises
        :class:`~kubecrawl.errors.WireFormatError`; the caller counts it and fetches itself.
        """
        return None

    async def robots_put(self, origin: str, kind: str, body: str, ttl: float, why: str = "") -> None:
        """Keep ``origin``'s robots.txt for ``ttl`` seconds from now (store clock); replaces what was there.

        One attempt, like :meth:`robots_get`. Also ends this worker's :meth:`robots_claim` of the origin.
        """

    async def robots_claim(self, origin: str, seconds: float) -> bool:
        """Try to become the one worker that fetches ``origin``'s robots.txt for the next ``seconds``.

        False: another worker holds the claim (the caller polls :meth:`robots_get` for its answer).
        Local stores: always True (the downloader's own lock serialises one process)."""
        return True

    async def frontier_status(self, top: int = 10) -> FrontierStatus | None:
        """The number of download slots with work and the ``top`` busiest (``/metrics``, ``kubecrawl
        status``); never a scan of every slot on Redis (docs/distributed.md, "Status"). None: not kept."""
        return None

    async def heartbeat(self, worker_id: str) -> None:
        """Record that this worker is alive (shared stores only; local stores do nothing).

        Called every few seconds; one attempt, no outage wait: the caller logs a failure and carries on.
        """
