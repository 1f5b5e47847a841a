"""A crawl's request queue and fingerprints under Python's own names: ``queue.Queue`` and a set.

:class:`RequestQueue` is ``queue.Queue`` over the store a crawl uses (memory, SQLite ``--state-dir``,
Redis): ``get()`` leases a request and ``task_done()`` acks it, so a consumer killed between the two
hands its request back (Redis: when the lease expires; SQLite: when the state dir is next opened).
``put()`` deduplicates exactly as the engine does for a request a spider yields (the scraper's
``check_request``, then the store's commit, ``dont_filter`` honoured). :class:`FingerprintSet` is a
set over the crawl's request fingerprints. Which store is decided by one argument (docs/queue.md)::

    q = RequestQueue.open("books")                               # in memory
    q = RequestQueue.open("books", state_dir="state")            # SQLite, as `kubecrawl crawl --state-dir`
    q = RequestQueue.open("books", redis_url="redis://h:6379/0")  # the Redis of a master/slave crawl

The interface is synchronous; the async store runs on a private event loop thread. Waiting (a blocking
``get``, ``put`` on a full queue, ``join``) polls the store with a backoff, never a busy loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue as _stdlib_queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from .backends.base import Backend, Lease, Outcome
from .errors import ConfigurationError
from .request import Request
from .settings import Settings, build_settings
from .urls import normalize

__all__ = ["Empty", "FingerprintSet", "Full", "InvalidRequest", "PushResult", "RequestQueue", "request_from_data"]

log = logging.getLogger(__name__)

T = TypeVar("T")

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full

#: the longest pause between two polls of the store while waiting
MAX_POLL_S = 0.5
_FIRST_POLL_S = 0.01
#: pops in a row that may come back empty while the store says a slot is ready now
_READY_RETRIES = 64
#: requests per store commit in :meth:`RequestQueue.put_many`
PUT_BATCH = 500
#: keys a JSON start URL / pushed line may have
DATA_KEYS = frozenset({"url", "meta", "priority", "callback", "dont_filter"})


class InvalidRequest(ValueError):
    """An item that can never be queued: not http(s), unparseable, meta that is not JSON data...

    ``kind`` is the crawl's counter name for it (``skipped_scheme``, ``bad_url``, ``unserializable_meta``,
    ``bad_data``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(slots=True)
class PushResult:
    """What a batch of puts did: new requests queued, and those already known (filtered)."""

    pushed: int = 0
    duplicate: int = 0


def request_from_data(
    data: bytes | str, *, callback: str | None = None, priority: int | None = None, dont_filter: bool = False
) -> Request:
    """A request from one pushed line or Redis list entry: a plain URL, or a JSON object with ``url`` and
    optionally ``meta``, ``priority``, ``callback``, ``dont_filter``. ``callback``/``priority`` are the
    defaults for what the line does not say. Raises :class:`InvalidRequest` (the URL itself is checked
    by :func:`check_item` when it is queued)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    if not text:
        raise InvalidRequest("bad_data", "empty entry")
    if not text.startswith("{"):
        return Request(text, callback, priority=priority or 0, dont_filter=dont_filter)
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("bad_data", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRequest("bad_data", "a JSON entry must be an object")
    unknown = set(obj) - DATA_KEYS
    if unknown:
        raise InvalidRequest("bad_data", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(DATA_KEYS)}")
    url, meta, prio = obj.get("url"), obj.get("meta", {}), obj.get("priority", priority or 0)
    cb, df = obj.get("callback", callback), obj.get("dont_filter", dont_filter)
    if not isinstance(url, str) or not url:
        raise InvalidRequest("bad_data", "a JSON entry needs a string 'url'")
    if not isinstance(meta, dict):
        raise InvalidRequest("bad_data", "'meta' must be an object")
    if not isinstance(prio, int) or isinstance(prio, bool):
        raise InvalidRequest("bad_data", "'priority' must be an integer")
    if cb is not None and (not isinstance(cb, str) or not cb.isidentifier() or cb.startswith("_")):
        raise InvalidRequest("bad_data", "'callback' must name a public spider method")
    if not isinstance(df, bool):
        raise InvalidRequest("bad_data", "'dont_filter' must be true or false")
    return Request(url, cb, meta=meta, priority=prio, dont_filter=df)


def to_request(item: Request | str) -> Request:
    """A queue item as a request: a :class:`Request` as it is, a URL string as a GET."""
    if isinstance(item, Request):
        return item
    if isinstance(item, str):
        if not item:
            raise InvalidRequest("bad_url", "an empty URL")
        return Request(item)
    raise TypeError(f"queue items are kubecrawl Requests or URL strings, not {type(item).__name__}")


def check_item(req: Request, wire: bool) -> None:
    """A URL from outside read as a browser's address bar reads it, then the engine's check of a yielded
    request (``scraper.check_request``), as :class:`InvalidRequest`.

    The URL is first parsed by the URL Standard (:func:`kubecrawl.urls.normalize`): an input it accepts
    becomes its serialisation (``HTTP://Example.COM:80/a`` → ``http://example.com/a``, tabs and
    newlines removed, ``http:example.com`` → ``http://example.com/``), as the links a spider follows
    are; one it rejects stays as it is and is refused."""
    from .core.scraper import RequestRefused, check_request

    href = normalize(req.url)
    if href is not None and href != req.url:
        req.url = href
        req._fp = None
    try:
        check_request(req, wire)
    except RequestRefused as exc:
        raise InvalidRequest(exc.kind, str(exc)) from None


def queue_worker_id() -> str:
    """A lease owner id of its own: never a crawl worker's (a slave's pod name), whose restart
    would take back every lease of that id."""
    return f"queue-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def queue_settings(crawl: str, settings: Settings | None, overrides: dict[str, Any]) -> Settings:
    """``settings`` (or the environment's ``KUBECRAWL_*`` and the defaults) with ``overrides`` applied."""
    extra = {"crawl": crawl, **overrides}
    if settings is None:
        return build_settings(cli=extra)
    data = {k: getattr(settings, k) for k in settings.model_fields_set}
    data.update(extra)
    try:
        return Settings.model_validate(data)
    except ValueError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from None


def make_store(settings: Settings, worker_id: str | None = None) -> Backend:
    """The crawl's store: Redis with a ``redis_url`` (or role master/slave), SQLite with a ``state_dir``,
    else in memory (private to this process)."""
    from .backends.frontier import Politeness

    polite = Politeness(settings.concurrency_per_host, settings.download_delay, settings.slot_key)
    redis = settings.role != "none" or "redis_url" in settings.model_fields_set
    if redis and settings.state_dir is not None:
        raise ConfigurationError("give a redis_url or a state_dir, not both: one crawl lives in one store")
    assert settings.crawl is not None
    if redis:
        from .backends.redis import RedisBackend

        backend = RedisBackend.from_settings(settings, settings.crawl)
        backend.worker_id = worker_id or queue_worker_id()
        # a queue consumer is not a slave of `concurrency` fetches: only concurrency_per_host bounds its gets
        backend.worker_cap = 0
        return backend
    if settings.state_dir is not None:
        from .backends.sqlite import SQLiteBackend

        return SQLiteBackend(
            settings.state_dir, None, "off", settings.fingerprint_ttl, worker_id=worker_id, politeness=polite
        )
    from .backends.memory import MemoryBackend

    return MemoryBackend(None, "off", settings.fingerprint_ttl, worker_id=worker_id, politeness=polite)


class _Loop:
    """A private event loop in a daemon thread: the async store's home; callers wait on futures."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kubecrawl-queue", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()  # the caller was interrupted: the coroutine stops at its next await
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        if not self.thread.is_alive():
            self.loop.close()


async def _pause(delay: float, deadline: float | None) -> float:
    """Sleep ``delay`` (not past ``deadline``) and return the next, doubled, delay."""
    if deadline is not None:
        delay = min(delay, max(0.0, deadline - time.monotonic()))
    await asyncio.sleep(delay)
    return min(delay * 2, MAX_POLL_S) if delay > 0 else _FIRST_POLL_S


def _deadline(block: bool, timeout: float | None) -> float | None:
    if not block or timeout is None:
        return None
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return time.monotonic() + timeout


class _Store:
    """One opened store and the loop it runs on, shared by a queue and its fingerprint set."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        from .core.engine import wants_wire

        self.backend = backend
        self.settings = settings
        self.wire = wants_wire(backend)
        self.loop = _Loop()
        self.closed = False
        try:
            self.run(backend.open())
        except BaseException:
            self.loop.close()
            raise

    def run(self, aw: Awaitable[T]) -> T:
        if self.closed:
            raise ValueError("the queue is closed")

        async def call() -> T:
            return await aw

        return self.loop.run(call())


class RequestQueue:
    """``queue.Queue`` over a crawl's store. Make one with :meth:`open`; see the module docstring.

    Differences from ``queue.Queue``, all from the store being shared and polite:

    * ``put`` returns whether the request was queued (False: its fingerprint was known, so it was
      filtered, as a spider's duplicate link is) and raises :class:`InvalidRequest` for a request the
      engine would refuse; ``get`` returns a :class:`~kubecrawl.Request`.
    * ``get`` hands out only requests whose download slot (host) is ready under the crawl's
      ``concurrency_per_host`` and ``download_delay``: a request gotten and not yet ``task_done``
      holds its host's place, as a page being fetched does.
    * ``qsize``/``empty``/``full``/``join`` are about the whole crawl: other processes put and get too.
      ``join`` returns when nothing is queued and nothing is leased anywhere in the crawl.
    * ``task_done(item)`` may name the request it acks; without it, the oldest request this thread got
      and has not acked. A request gotten and not acked when the queue is closed goes back to the queue.
    """

    def __init__(self, store: _Store, maxsize: int = 0) -> None:
        self._store = store
        self.maxsize = int(maxsize)
        self._held: dict[str, Lease] = {}  # leased by get(), not acked yet
        self._lock = threading.Lock()
        self._mine = threading.local()
        self.fingerprints = FingerprintSet(store)

    @classmethod
    def open(
        cls,
        crawl: str,
        settings: Settings | None = None,
        *,
        maxsize: int = 0,
        worker_id: str | None = None,
        **overrides: Any,
    ) -> RequestQueue:
        """The queue of crawl ``crawl``. ``overrides`` are settings (``redis_url=``, ``state_dir=``,
        ``lease_seconds=``...) on top of ``settings`` (default: the environment's and the defaults)."""
        s = queue_settings(crawl, settings, overrides)
        return cls(_Store(make_store(s, worker_id), s), maxsize)

    @property
    def backend(self) -> Backend:
        return self._store.backend

    # -- queue.Queue ---------------------------------------------------------------------------
    def qsize(self) -> int:
        """Requests queued and not leased (the whole crawl's)."""
        return int(self._store.run(self.backend.queued()))

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return 0 < self.maxsize <= self.qsize()

    def put(self, item: Request | str, block: bool = True, timeout: float | None = None) -> bool:
        """Queue ``item`` unless its fingerprint is known; True if it was queued.

        With a ``maxsize``, waits while the queue is full (``block=False``, or ``timeout`` passed:
        :class:`queue.Full`)."""
        return self.put_many([item], block, timeout).pushed == 1

    def put_nowait(self, item: Request | str) -> bool:
        return self.put(item, block=False)

    def put_many(self, items: Iterable[Request | str], block: bool = True, timeout: float | None = None) -> PushResult:
        """Queue many items, :data:`PUT_BATCH` per store commit. Every item is checked before anything
        of its batch is queued (:class:`InvalidRequest` names the first bad one); a ``maxsize`` is
        checked before each batch, so one batch may take the queue past it."""
        total = PushResult()
        batch: list[Request] = []
        for item in items:
            req = to_request(item)
            check_item(req, self._store.wire)
            batch.append(req)
            if len(batch) >= PUT_BATCH:
                self._add(total, self._store.run(self._put(batch, block, timeout)))
                batch = []
        if batch:
            self._add(total, self._store.run(self._put(batch, block, timeout)))
        return total

    @staticmethod
    def _add(total: PushResult, res: PushResult) -> None:
        total.pushed += res.pushed
        total.duplicate += res.duplicate

    async def _put(self, batch: list[Request], block: bool, timeout: float | None) -> PushResult:
        b = self.backend
        if self.maxsize > 0:
            deadline = _deadline(block, timeout)
            delay = _FIRST_POLL_S
            while await b.queued() >= self.maxsize:
                if not block or (deadline is not None and time.monotonic() >= deadline):
                    raise Full
                delay = await _pause(delay, deadline)
        res = await b.commit([Outcome(None, requests=batch)])
        # counted after the fact (the store's own counters say what the commit did): a process killed
        # between the two commits leaves its requests queued and these counters short
        stats = {k: v for k, v in (("pushed", res.enqueued), ("pushed_duplicate", res.filtered)) if v}
        if stats:
            await b.commit([Outcome(None, stats=stats)])
        return PushResult(res.enqueued, res.filtered)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the crawl's counter ``name`` (``kubecrawl push`` counts ``pushed_invalid``)."""
        self._store.run(self.backend.commit([Outcome(None, stats={name: n})]))

    def get(self, block: bool = True, timeout: float | None = None) -> Request:
        """Lease the next request (highest priority first within a ready host); :class:`queue.Empty`
        if none comes (``block=False``: now; else within ``timeout``, or wait for ever)."""
        lease = self._store.run(self._get(block, _deadline(block, timeout)))
        pending = getattr(self._mine, "leases", None)
        if pending is None:
            pending = self._mine.leases = deque()
        pending.append(lease.id)
        return lease.request

    def get_nowait(self) -> Request:
        return self.get(block=False)

    async def _get(self, block: bool, deadline: float | None) -> Lease:
        b = self.backend
        delay = _FIRST_POLL_S
        retries = 0
        while True:
            leases = await b.pop(1)
            if leases:
                with self._lock:
                    self._held[leases[0].id] = leases[0]
                return leases[0]
            if b.next_ready == 0 and retries < _READY_RETRIES:
                # a slot said ready turned out empty (the local frontier learns a slot's end at a pop,
                # or its entries were corrupt): others may be ready now, so ask again at once
                retries += 1
                continue
            retries = 0
            if not block or (deadline is not None and time.monotonic() >= deadline):
                raise Empty
            wait = delay if b.next_ready is None else min(delay, max(b.next_ready, 0.002))
            await _pause(wait, deadline)
            delay = min(delay * 2, MAX_POLL_S)

    def task_done(self, item: Request | None = None) -> None:
        """Ack a request gotten with :meth:`get`: it is done and never handed out again.

        ``ValueError`` if there is nothing to ack (as ``queue.Queue``: called more times than ``get``)."""
        lid = self._pick(item)
        # a failing ack raises and the lease stays held: released at close (or acked by task_done(item))
        self._store.run(self.backend.commit([Outcome(lid)]))
        with self._lock:
            self._held.pop(lid, None)

    def _pick(self, item: Request | None) -> str:
        with self._lock:
            if item is not None:
                for lid, lease in self._held.items():
                    if lease.request is item:
                        self._drop_mine(lid)
                        return lid
                raise ValueError(f"{item!r} was not gotten from this queue, or is done already")
            pending: deque[str] | None = getattr(self._mine, "leases", None)
            while pending:
                lid = pending.popleft()
                if lid in self._held:
                    return lid
            if self._held:
                return next(iter(self._held))  # another thread's: queue.Queue does not mind either
        raise ValueError("task_done() called too many times")

    def _drop_mine(self, lid: str) -> None:
        pending: deque[str] | None = getattr(self._mine, "leases", None)
        if pending and lid in pending:
            pending.remove(lid)

    def join(self, timeout: float | None = None) -> None:
        """Wait until nothing is queued and nothing is leased anywhere in the crawl (every request put
        was gotten and acked). ``timeout`` (an extension): :class:`TimeoutError` when it passes first."""
        self._store.run(self._join(_deadline(True, timeout)))

    async def _join(self, deadline: float | None) -> None:
        b = self.backend
        delay = _FIRST_POLL_S
        while await b.queued() > 0 or await b.in_flight() > 0:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("requests are still queued or in flight")
            delay = await _pause(delay, deadline)

    @property
    def unfinished_tasks(self) -> int:
        """Requests this queue got and has not acked."""
        with self._lock:
            return len(self._held)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Hand back what was gotten and not acked, close the store and stop the loop thread."""
        store = self._store
        if store.closed:
            return
        with self._lock:
            held = list(self._held)
            self._held.clear()
        try:
            if held:
                store.run(self.backend.release(held))
                log.info("handed %d request(s) gotten and not done back to the queue", len(held))
            store.run(self.backend.close())
        finally:
            store.closed = True
            store.loop.close()

    def __enter__(self) -> RequestQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FingerprintSet:
    """A set over the crawl's request fingerprints: ``add``, ``in``, ``len``.

    Members are requests or URLs (a URL is a GET); ``x in fps`` is True when a request for ``x`` would
    be filtered now, ``fps.add(x)`` records ``x`` as seen without queuing it (True if it was new), by the
    same rule as the store's commit (fingerprint ages included). ``len`` is how many fingerprints the
    crawl recorded (Redis: its ``seen`` counter, which ``kubecrawl status`` shows).
    """

    def __init__(self, store: _Store) -> None:
        self._store = store

    @classmethod
    def open(cls, crawl: str, settings: Settings | None = None, **overrides: Any) -> FingerprintSet:
        """A set on its own store. With a local store, use a queue's ``q.fingerprints`` instead: one
        process opens a state dir once."""
        s = queue_settings(crawl, settings, overrides)
        return cls(_Store(make_store(s), s))

    @staticmethod
    def _key(item: Request | str) -> Request:
        req = to_request(item)
        check_item(req, wire=False)
        return Request(req.url, method=req.method, body=req.body, fingerprint_ttl=req.fingerprint_ttl)

    def add(self, item: Request | str) -> bool:
        res = self._store.run(self._store.backend.commit([Outcome(None, mark=[self._key(item)])]))
        return res.marked == 1

    def update(self, items: Iterable[Request | str]) -> int:
        """Add many; returns how many were new."""
        reqs = [self._key(i) for i in items]
        if not reqs:
            return 0
        return self._store.run(self._store.backend.commit([Outcome(None, mark=reqs)])).marked

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, Request | str):
            return False
        try:
            key = self._key(item)
        except InvalidRequest:
            return False  # a URL that can never be queued is never seen (``add`` raises for it)
        return bool(self._store.run(self._store.backend.has_fingerprints([key]))[0])

    def __len__(self) -> int:
        return int(self._store.run(self._store.backend.fingerprint_count()))

    def close(self) -> None:
        store = self._store
        if not store.closed:
            try:
                store.run(store.backend.close())
            finally:
                store.closed = True
                store.loop.close()

    def __enter__(self) -> FingerprintSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
