"""The per-host frontier rules every store applies (docs/distributed.md, "The frontier").

Requests are queued per download slot (:func:`slot_key`: the hostname by default). A slot has its own
priority queue, a count of requests leased and not yet acked (``busy``) and a next-allowed time.
``pop`` hands out only requests of slots that are ready (next-allowed time passed) and have a free
concurrency slot; each request handed out takes one slot until its lease is acked, released or expires
and, with a delay, pushes the slot's next-allowed time to ``now + delay x U(0.5, 1.5)``. At the ack
the same delay is measured again from when the fetch was answered (the worker reports how long ago),
the latest moment the site surely had the request: so the gap the site sees between two arrivals is
never below the chosen delay, however long a lease waited in a worker's buffer or in transit.

Feedback from the sites moves a slot's times for every worker: a robots.txt ``Crawl-delay`` and the
AutoThrottle delay a worker adapted (both reported with its acks) are floors under the chosen delay,
and a 429 or a 503 with ``Retry-After`` pushes the slot's next-allowed time out at once
(:meth:`HostFrontier.backoff`, ``Backend.backoff``).

:class:`HostFrontier` is the bookkeeping for the in-process stores (memory, SQLite); ``lua/pop.lua``
and ``lua/commit.lua`` restate it for Redis. Ready slots sit in a heap keyed by next-allowed time, so
a pop costs O(log hosts) per slot it visits, however many hosts are waiting.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..request import Request

from .base import FrontierStatus, HostLoad

#: the randomisation of ``download_delay`` (Scrapy's RANDOMIZE_DOWNLOAD_DELAY): 0.5x .. 1.5x
DELAY_SPREAD = (0.5, 1.5)
#: a robots.txt Crawl-delay above this is taken as this (a hostile value must not park a slot for days)
MAX_CRAWL_DELAY = 60.0
#: an AutoThrottle delay or a backoff above this is taken as this (one hour)
MAX_SLOT_WAIT = 3600.0
SLOT_KEYS = ("host", "domain")
#: seconds an in-process store's frontier status (one pass over its slots) is reused
STATUS_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class Politeness:
    """What the frontier enforces for every slot, for the whole crawl (every worker passes the same)."""

    per_host: int = 1_000_000  # no limit unless asked (stores built outside a crawl, tests)
    delay: float = 0.0  # seconds between request starts on one slot (before randomisation)
    slot_key: str = "host"


@lru_cache(maxsize=1)
def _extractor():  # type: ignore[no-untyped-def]
    try:
        import tldextract
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("slot_key=domain needs tldextract (pip install tldextract)") from exc
    # the Public Suffix List snapshot bundled with the package: never fetched at run time
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def slot_key(url: str, mode: str = "host") -> str:
    """The download slot of ``url``: its hostname (``host``) or registered domain (``domain``).

    A URL without a host gets ``""`` (one slot for all of them; the downloader refuses them anyway).
    """
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    if mode == "domain" and host:
        ext = _extractor()(host)
        return ext.top_domain_under_public_suffix or host  # an IP or a bare suffix: the host itself
    return host


#: a spider's ``meta['download_slot']`` longer than this is cut (it names a Redis key and hash fields)
MAX_SLOT_NAME = 256


def request_slot(req: Request, mode: str = "host") -> str:
    """The download slot of ``req``: ``meta['download_slot']`` when the spider set one (Scrapy's meta
    key: requests that name the same slot share its politeness, whatever their hosts), else
    :func:`slot_key` of its URL."""
    meta = req.meta
    if meta:
        named = meta.get("download_slot")
        if isinstance(named, str) and named:
            return named[:MAX_SLOT_NAME]
    return slot_key(req.url, mode)


def delay_factor(rng: Callable[[float, float], float] = random.uniform) -> float:
    return rng(*DELAY_SPREAD)


@dataclass(slots=True)
class _Host:
    queued: int = 0
    busy: int = 0
    next_at: float = 0.0  # store clock (epoch s)
    scheduled: float | None = None  # the ready time it has in the heap (None: not in the heap)
    last_delay: float = 0.0  # the randomised delay chosen at its last pop
    crawl_delay: float = 0.0  # its robots.txt Crawl-delay, a floor under the delay (0: none)
    throttle_delay: float = 0.0  # the AutoThrottle delay last reported for it, another floor (0: none)


@dataclass(slots=True)
class HostFrontier:
    """Per-slot counts, next-allowed times and the heap of ready slots (see module docstring).

    The store keeps the requests themselves (per slot, by priority); this says which slots may give
    how many now. ``take(now, n)`` yields ``(slot, k)`` grants; the store pops up to ``k`` requests from
    that slot and reports how many it leased and how many are left with :meth:`taken`.
    """

    policy: Politeness = field(default_factory=Politeness)
    hosts: dict[str, _Host] = field(default_factory=dict)
    _heap: list[tuple[float, int, str]] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)
    _status: tuple[int, float, FrontierStatus] | None = None

    def _host(self, key: str) -> _Host:
        h = self.hosts.get(key)
        if h is None:
            h = self.hosts[key] = _Host()
        return h

    def _schedule(self, key: str, h: _Host) -> None:
        """Put the slot in the heap at its next-allowed time if it has work and a free slot."""
        if h.queued > 0 and h.busy < self.policy.per_host:
            if h.scheduled != h.next_at:
                h.scheduled = h.next_at
                heapq.heappush(self._heap, (h.next_at, next(self._seq), key))
        else:
            h.scheduled = None

    def added(self, key: str, n: int = 1) -> None:
        h = self._host(key)
        h.queued += n
        self._schedule(key, h)

    def take(self, now: float, n: int) -> list[tuple[str, int]]:
        """Grants for up to ``n`` requests from ready slots, earliest ready first."""
        grants: list[tuple[str, int]] = []
        heap = self._heap
        while heap and n > 0 and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            h = self.hosts[key]
            if h.scheduled != at:
                continue  # a stale heap entry
            h.scheduled = None
            free = self.policy.per_host - h.busy
            k = min(free, n) if self._delay(h) <= 0 else min(1, free, n)
            if k <= 0:
                continue
            grants.append((key, k))
            n -= k
        return grants

    def taken(self, key: str, k: int, now: float, left: int) -> None:
        """``k`` requests of ``key`` were leased at ``now``; ``left`` are still queued there (as the
        store counts them: the store's own queue is the truth, this only follows it)."""
        h = self.hosts[key]
        h.queued = max(0, left)
        h.busy += k
        if self._delay(h) > 0 and k > 0:
            h.last_delay = self._chosen_delay(h)
            h.next_at = max(h.next_at, now + h.last_delay)
        self._schedule(key, h)

    def _delay(self, h: _Host) -> float:
        return max(self.policy.delay, h.crawl_delay, h.throttle_delay)

    def _chosen_delay(self, h: _Host) -> float:
        """``download_delay`` x U(0.5, 1.5), never under the slot's Crawl-delay nor its AutoThrottle delay."""
        return max(self.policy.delay * delay_factor(), h.crawl_delay, h.throttle_delay)

    def finished(
        self,
        key: str,
        now: float,
        answered_ago: float | None,
        requeued: bool,
        crawl_delay: float | None = None,
        throttle_delay: float | None = None,
    ) -> None:
        """A lease of ``key`` ended: acked (``requeued`` False) or back in the queue (release, expiry).

        ``answered_ago``: seconds since its fetch was answered, as the worker measured it (None: nothing
        was sent); the next request may start ``last_delay`` after that. ``crawl_delay`` and
        ``throttle_delay`` (None: not reported) replace the slot's floors."""
        h = self._host(key)
        h.busy = max(0, h.busy - 1)
        if crawl_delay is not None:
            h.crawl_delay = min(max(crawl_delay, 0.0), MAX_CRAWL_DELAY)
            h.last_delay = max(h.last_delay, h.crawl_delay)
        if throttle_delay is not None:
            h.throttle_delay = min(max(throttle_delay, 0.0), MAX_SLOT_WAIT)
            h.last_delay = max(h.last_delay, h.throttle_delay)
        if requeued:
            h.queued += 1
        elif answered_ago is not None and self._delay(h) > 0:
            h.next_at = max(h.next_at, now - answered_ago + h.last_delay)
        self._schedule(key, h)

    def next_ready(self, now: float) -> float | None:
        """Seconds until the earliest slot with work and a free slot is ready (0: now; None: none is)."""
        heap = self._heap
        while heap:
            at, _, key = heap[0]
            if self.hosts[key].scheduled != at:
                heapq.heappop(heap)
                continue
            return max(0.0, at - now)
        return None

    def backoff(self, key: str, now: float, seconds: float) -> None:
        """The site asked to slow down (429, 503 with Retry-After): ``key`` gives nothing before
        ``now + seconds`` (a later next-allowed time it already has is kept)."""
        h = self._host(key)
        h.next_at = max(h.next_at, now + min(max(seconds, 0.0), MAX_SLOT_WAIT))
        self._schedule(key, h)

    def restore(
        self, key: str, next_at: float, last_delay: float, crawl_delay: float, throttle_delay: float = 0.0
    ) -> None:
        """A slot's times as a persistent store kept them (before its queued counts are added)."""
        h = self._host(key)
        h.next_at = max(h.next_at, next_at)
        h.last_delay = last_delay
        h.crawl_delay = min(max(crawl_delay, 0.0), MAX_CRAWL_DELAY)
        h.throttle_delay = min(max(throttle_delay, 0.0), MAX_SLOT_WAIT)
        self._schedule(key, h)

    def times(self, key: str) -> tuple[float, float, float, float] | None:
        """``(next_at, last_delay, crawl_delay, throttle_delay)`` of a slot with a delay or a backoff,
        for a store to persist (None: neither)."""
        h = self.hosts.get(key)
        if h is None or (self._delay(h) <= 0 and h.next_at <= 0):
            return None
        return h.next_at, h.last_delay, h.crawl_delay, h.throttle_delay

    def status(self, top: int, now: float) -> FrontierStatus:
        """Slots with queued or leased requests and the ``top`` busiest (queued + leased). One pass
        over the slots, O(hosts): for the in-process stores only (Redis keeps a ZSET instead), and
        cached by :meth:`status_cached` so a scrape every few seconds costs one pass at most every
        :data:`STATUS_CACHE_S`."""
        with_work = [(h.queued + h.busy, key, h) for key, h in self.hosts.items() if h.queued or h.busy]
        best = heapq.nlargest(top, with_work, key=lambda t: (t[0], t[1]))
        loads = [
            HostLoad(
                key,
                h.queued,
                h.busy,
                h.last_delay if self._delay(h) > 0 else None,
                h.crawl_delay or None,
                max(0.0, h.next_at - now),
            )
            for _, key, h in best
        ]
        return FrontierStatus(len(with_work), loads)

    def status_cached(self, top: int, now: float) -> FrontierStatus:
        cached = self._status
        if cached is None or cached[0] != top or not 0 <= now - cached[1] < STATUS_CACHE_S:
            cached = self._status = (top, now, self.status(top, now))
        return cached[2]

    def reset_leases(self) -> None:
        """Every lease is gone (a store reopened): all slots free again."""
        for key, h in self.hosts.items():
            h.busy = 0
            self._schedule(key, h)
