"""The scheduler: the engine's only way to the store.

It keeps a small local buffer of leased requests topped up (``feed``), hands leases to the engine's
workers (``next_lease``), collects their outcomes (``complete``) and commits them in batches, by size
or on a tick (``flush``); it remembers exact URLs it committed (the known-URL cache the scraper
checks before any fingerprint work), heartbeats, and on stop commits what is pending and hands
unprocessed leases back (``close``).

A request is acked only when its outcome is committed, so a process that dies loses nothing: the store
hands its leases out again. A commit that fails because of one bad entry is split until the bad entry
is found, which is then set aside and counted; a store that fails is retried with backoff for a bounded
time and then reported as fatal (the engine exits non-zero).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable

from ..backends.base import Backend, CommitResult, Lease, Outcome
from ..errors import KubecrawlError, StorageError, StorageFatal, is_disk_full
from ..request import Request
from ..settings import Settings
from ..stats import Stats

log = logging.getLogger(__name__)

#: counters the store keeps itself from what a commit actually did
STORE_COUNTED = frozenset({"filtered", "items", "items_duplicate", "enqueued"})
#: errors of the store itself (as opposed to one bad entry in a batch): retried, then fatal
STORE_ERRORS: tuple[type[BaseException], ...] = (StorageError, sqlite3.Error, OSError)
#: how long store errors are retried before the crawl stops with an error
STORE_RETRY_S = 120.0
#: how long "work queued, nothing can be leased, nothing in flight" may last before the crawl says so and stops
STALL_S = 30.0
_KNOWN_MAX = 500_000
#: new requests per store call at most: a page with 650k links must not become one multi-second Lua
#: call that freezes every other client of the same Redis
MAX_COMMIT_REQUESTS = 2_000


class StoreFailed(KubecrawlError):
    """The store kept failing for longer than the retry window (or cannot be used at all); the crawl
    cannot go on. A :class:`KubecrawlError`, so a seeding master exits 1 with the message."""


class Stalled(Exception):
    """Work is queued but none can be leased and none is in flight: the crawl would wait forever."""


class Scheduler:
    """Feeds leases, collects outcomes and commits them (see module docstring)."""

    def __init__(self, backend: Backend, settings: Settings, stats: Stats, item_key: list[str] | None = None) -> None:
        self.backend = backend
        self._fatal_raised = False
        self.item_key = list(item_key if item_key is not None else settings.item_key)
        self.s = settings
        self.stats = stats
        self.slave = settings.role == "slave"
        self.buffer: deque[Lease] = deque()
        self.held: dict[str, Lease] = {}  # leased and not yet committed
        self.pending: list[Outcome] = []
        self.committing = 0  # outcomes in the commit under way (taken out of ``pending`` meanwhile)
        self.active = 0  # leases handed to workers and not yet completed
        self.known_urls: set[str] = set()  # exact URLs committed by this process (see Scraper.add_request)
        self.done = asyncio.Event()  # set when the store has no more work for this process
        self.stop_reason = "finished"
        self.last_commit_at = time.monotonic()
        self._buffer_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._closing = False
        self._stopping = False
        self._stall_since: float | None = None
        self._dup_logged = 0

    # -- named predicates ------------------------------------------------------------------------
    def wanted(self) -> int:
        """How many more leases the buffer can take now: one pop's worth beyond what the workers are
        fetching, and never more buffered than there are workers (a slave of ``concurrency=8`` with
        ``pop_batch=32`` holding 32 idle leases would keep them, and their hosts' places, from the
        other slaves: ``python -m bench politeness``, 4 slaves, one of them got no page)."""
        return self.s.concurrency + min(self.s.pop_batch, self.s.concurrency) - len(self.buffer) - self.active

    def needs_backout(self) -> bool:
        """Enough is buffered or in flight: leasing more now would only hold leases others could use."""
        return self.wanted() < min(self.s.pop_batch, self.s.concurrency)

    def is_idle(self) -> bool:
        """Nothing buffered, nothing being processed, nothing waiting to be committed by this process."""
        return self.active == 0 and not self.buffer and not self.pending

    async def is_complete(self) -> bool:
        """There is no more work for this process: local roles when the queue is empty; a slave when
        the round is seeded and nothing is queued or in flight anywhere (only with ``exit_when_idle``)."""
        if not self.slave:
            return await self.backend.queued() == 0
        return bool(self.s.exit_when_idle) and await self.backend.is_complete()

    def waiting_on_hosts(self) -> bool:
        """The last pop found queued work whose download slots are not ready yet (a politeness delay)."""
        return self.backend.next_ready is not None

    async def is_stalled(self) -> bool:
        """Requests are queued, this process is idle, nobody holds a lease, no download slot is merely
        waiting out its delay, and yet none can be leased."""
        if self.waiting_on_hosts():
            return False
        return await self.backend.queued() > 0 and await self.backend.in_flight() == 0

    def _idle_wait(self, backoff: float) -> float:
        """How long to wait before popping again: until the next slot is ready, if the store said.

        When no slot is ready and none is waiting (every slot with work is busy), a slave waits at
        least half the delay: a busy slot's next request comes no sooner than that after its answer."""
        wait = max(backoff, 0.5 * self.s.download_delay) if self.slave else 0.5
        ready = self.backend.next_ready
        if ready is not None:
            wait = min(wait, max(ready, 0.002))
        return min(wait, 1.0) if self.slave else wait

    # -- workers' side ---------------------------------------------------------------------------
    async def next_lease(self) -> Lease | None:
        """The next lease to process, waiting for one; None once stopping (the worker then ends)."""
        while True:
            if self._stopping:
                return None
            if self.buffer:
                self.active += 1
                return self.buffer.popleft()
            self._buffer_ready.clear()
            await self._buffer_ready.wait()

    def complete(self, oc: Outcome) -> None:
        """A worker finished a lease: queue its outcome for the next commit."""
        self.active -= 1
        self.pending.append(oc)
        if oc.lease_id is not None:
            self.backend.fetch_done(oc)  # a local store frees the slot place now
        if len(self.pending) >= self.s.pop_batch or not self.buffer:
            self._wake.set()

    def abandon(self) -> None:
        """A worker was cancelled mid-lease: the lease stays held and is released on close."""
        self.active -= 1

    def stop(self, reason: str) -> None:
        """Stop handing out leases; workers finish what they have."""
        if not self._stopping:
            self._stopping = True
            self.stop_reason = reason
            self._wake.set()
            self._buffer_ready.set()
            self.done.set()
            self.backend.stopping()

    # -- feeding -----------------------------------------------------------------------------------
    async def feed(self) -> None:
        """Keep the buffer topped up until the store has no more work (then set ``done``) or a stop.

        Raises :class:`StoreFailed` or :class:`Stalled` instead of waiting forever."""
        backoff = 0.01
        short = False  # the last pop gave fewer than asked: the store had no more ready then
        while not self._stopping and not self._closing:
            if self.needs_backout():
                self._wake.clear()
                await self._wait_wake(0.5)
                continue
            want = min(self.wanted(), self.s.pop_batch)
            if short and self.pending:
                # what is pending frees slot places (and may hold new requests): commit it and pop
                # what it freed in one store call (one round trip on Redis)
                leases = await self.flush(pop=want)
            else:
                leases = await self._store("pop", self.backend.pop, want)
                self._take(leases)
            # "short": the store has no more ready right now (it says so with next_ready), so the next
            # round trip should carry the pending outcomes, whose acks free places, with its pop
            more = self.backend.next_ready == 0
            short = len(leases) < want or not more
            if leases:
                self._stall_since = None
                if more:
                    backoff = 0.01
                    continue
                # the store had no more ready now (slots busy or waiting out a delay): popping again
                # at once would come back empty; wait for a completion here or the next ready slot
                self._wake.clear()
                await self._wait_wake(self._idle_wait(backoff))
                continue
            # nothing to pop: commit what is pending (it may hold new requests) and pop again, in one call
            if self.pending:
                continue
            if self.active == 0 and not self.buffer:
                await self.flush()  # waits for a commit in progress; it may enqueue more
                if self.pending or self.buffer:
                    continue
                if await self._store("completion check", self.is_complete):
                    if self.slave:
                        self.stop_reason = "idle"
                    self.done.set()
                    return
                await self._check_stall()
            self._wake.clear()
            await self._wait_wake(self._idle_wait(backoff))
            if self.slave:
                backoff = min(backoff * 2, 1.0)

    def _take(self, leases: list[Lease]) -> None:
        """Leases a pop gave: held until committed or released, buffered for the workers."""
        if leases:
            for lease in leases:
                self.held[lease.id] = lease
            self.buffer.extend(leases)
            self._buffer_ready.set()

    async def _check_stall(self) -> None:
        if not await self._store("stall check", self.is_stalled):
            self._stall_since = None
            return
        now = time.monotonic()
        if self._stall_since is None:
            self._stall_since = now
            log.warning(
                "%d request(s) queued but none can be leased and none is in flight; stopping in %.0fs if that lasts",
                await self.backend.queued(),
                STALL_S,
            )
        elif now - self._stall_since > STALL_S:
            raise Stalled(
                f"{await self.backend.queued()} request(s) stayed queued for {STALL_S:.0f}s with nothing in flight "
                "and none could be leased; the store may hold entries this worker cannot read"
            )

    async def _wait_wake(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def tick(self, on_beat: Callable[[], None] | None = None) -> None:
        """Periodic duties until closed: flush pending outcomes; every 5 s heartbeat and ``on_beat``."""
        last_beat = 0.0
        while not self._closing:
            await asyncio.sleep(0.05)
            if self.pending:
                # what the acks free is popped in the same call when the buffer has room for a batch
                await self.flush(pop=0 if self.needs_backout() else min(self.wanted(), self.s.pop_batch))
            now = time.monotonic()
            if now - last_beat > 5:
                last_beat = now
                try:
                    await self.backend.heartbeat(self.backend.worker_id)
                except Exception as exc:  # a missed heartbeat is not fatal; the next one may pass
                    log.warning("heartbeat failed: %s", exc)
                if on_beat is not None:
                    on_beat()

    async def _store(self, what: str, fn, *args):  # type: ignore[no-untyped-def]
        """Call the store, retrying store errors with backoff for up to STORE_RETRY_S, then StoreFailed."""
        delay = 0.2
        first: float | None = None
        while True:
            try:
                return await fn(*args)
            except StorageFatal as exc:
                raise StoreFailed(f"the store failed during {what}: {exc}") from exc
            except STORE_ERRORS as exc:
                if is_disk_full(exc):  # waiting does not make space; the operator must
                    raise StoreFailed(
                        f"the disk is full or refuses writes ({exc}) during {what}: free space and run the same command again; "
                        "nothing is lost (what was committed stays in the store, the rest is fetched again)"
                    ) from exc
                now = time.monotonic()
                if first is None:
                    first = now
                    log.warning("store error during %s (%s); retrying for up to %.0fs", what, exc, STORE_RETRY_S)
                elif now - first > STORE_RETRY_S:
                    raise StoreFailed(f"the store kept failing during {what} for {now - first:.0f}s: {exc}") from exc
                if self._closing and now - first > 5:
                    raise StoreFailed(f"the store failed during {what} while stopping: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- committing ----------------------------------------------------------------------------------
    async def commit_seeds(self, requests: list[Request]) -> CommitResult:
        """Enqueue start requests (no lease to ack), with the same isolation and retries as any commit."""
        res = await self._store("seed commit", self._commit_isolating, [Outcome(None, requests=requests)])
        self.stats.inc("filtered", res.filtered)
        self.stats.inc("enqueued", res.enqueued)
        return res

    async def commit_requests(self, requests: list[Request]) -> None:
        """Enqueue part of a callback's requests before its lease is done (no ack): a callback that
        yields a million requests holds at most one batch of them in memory. Should the process die
        before the ack, the lease is fetched again and its requests meet their fingerprints (only
        ``dont_filter`` ones are queued twice)."""
        async with self._commit_lock:
            group = [Outcome(None, requests=requests)]
            res = await self._store("commit", self._commit_isolating, group)
            self._committed(group, res)

    async def flush(self, pop: int = 0) -> list[Lease]:
        """Commit every pending outcome (one batch); with ``pop`` > 0 also pop up to that many leases
        in the same store call (:meth:`Backend.commit_pop`). Returns the leases popped, already held
        and buffered."""
        leases: list[Lease] = []
        async with self._commit_lock:
            if self._stopping or self._closing:
                pop = 0
            if not self.pending:
                if pop > 0:
                    leases = await self._store("pop", self.backend.pop, pop)
                    self._take(leases)
                return leases
            batch, self.pending = self.pending, []
            self.committing = len(batch)
            delta = {k: v for k, v in self.stats.delta().items() if k not in STORE_COUNTED}
            if delta:
                last = batch[-1]
                for k, v in delta.items():
                    last.stats[k] = last.stats.get(k, 0) + v
            groups = commit_groups(batch, MAX_COMMIT_REQUESTS)
            try:
                for i, group in enumerate(groups):
                    n = pop if i == len(groups) - 1 else 0
                    try:
                        res, leases = await self._store("commit", self._commit_pop_isolating, group, n)
                    except BaseException:
                        # nothing of these groups is acked: kept for a later attempt (or the lease reaper)
                        self.pending[:0] = [oc for g in groups[i:] for oc in g]
                        raise
                    self._take(leases)
                    self._committed(group, res)
            finally:
                self.committing = 0
        self._wake.set()
        self._check_backend_fatal()
        return leases

    async def _commit_pop_isolating(self, batch: list[Outcome], n: int) -> tuple[CommitResult, list[Lease]]:
        """:meth:`Backend.commit_pop`; if an entry of the batch (not the store) fails, the batch is
        committed by :meth:`_commit_isolating` and nothing is popped (the next pop does)."""
        try:
            return await self.backend.commit_pop(batch, n)
        except STORE_ERRORS:
            raise
        except Exception as exc:
            log.debug("a commit of %d outcome(s) failed (%r): isolating the entry", len(batch), exc)
        return await self._commit_isolating(batch), []

    def _check_backend_fatal(self) -> None:
        """The store committed but says the crawl cannot go on (a feed's disk is full): stop, once."""
        fatal = self.backend.fatal
        if fatal is not None and not self._fatal_raised:
            self._fatal_raised = True
            raise StoreFailed(fatal)

    def _committed(self, group: list[Outcome], res: CommitResult) -> None:
        self.last_commit_at = time.monotonic()
        known = self.known_urls
        for oc in group:
            if oc.lease_id is not None:
                self.held.pop(oc.lease_id, None)
            for req in oc.requests:
                if not req.dont_filter and req.fingerprint_ttl is None:
                    known.add(req.url)
        self.stats.inc("filtered", res.filtered)
        self.stats.inc("items", res.items_stored)
        self.stats.inc("enqueued", res.enqueued)
        if res.items_duplicate:
            self._count_duplicates(res.items_duplicate)
        if len(known) > _KNOWN_MAX:
            known.clear()

    def _count_duplicates(self, n: int) -> None:
        self.stats.inc("items_duplicate", n)
        total = self.stats["items_duplicate"]
        if total >= 2 * self._dup_logged:  # at the first, then each time the total doubles
            self._dup_logged = total
            log.info(
                "%d item(s) so far not stored again: an item with the same item_key (%s) was stored before "
                "(item_dedup=%s)",
                total,
                ", ".join(self.item_key) or "whole item",
                self.backend.item_dedup,
            )

    async def _commit_isolating(self, batch: list[Outcome]) -> CommitResult:
        """Commit ``batch``; if an entry in it (not the store) fails, find it by splitting and set it aside.

        The scraper already refuses requests that cannot be fingerprinted or serialised, so this is the
        second wall: whatever slips through costs only itself, never the rest of its batch."""
        try:
            return await self.backend.commit(batch)
        except STORE_ERRORS:
            raise
        except Exception as exc:
            failure = exc
        total = CommitResult()
        if len(batch) > 1:
            log.warning("a commit of %d outcomes failed (%r): committing them one by one", len(batch), failure)
            for oc in batch:
                _add(total, await self._commit_isolating([oc]))
            return total
        oc = batch[0]
        if not oc.requests and not oc.items:
            raise StoreFailed(f"the store refused an acknowledgement: {failure!r}") from failure
        for req in oc.requests:
            await self._commit_part(Outcome(None, requests=[req]), req.url, total)
        for rec in oc.items:
            await self._commit_part(Outcome(None, items=[rec]), "an item", total)
        try:
            _add(total, await self.backend.commit([Outcome(oc.lease_id, stats=oc.stats)]))
        except STORE_ERRORS:
            raise
        except Exception as exc:
            raise StoreFailed(f"the store refused an acknowledgement: {exc!r}") from exc
        return total

    async def _commit_part(self, part: Outcome, what: str, total: CommitResult) -> None:
        try:
            _add(total, await self.backend.commit([part]))
        except STORE_ERRORS:
            raise
        except Exception as exc:
            self.stats.error(f"commit:{type(exc).__name__}")
            log.error("set aside %s: the store could not take it (%r)", what, exc)

    # -- stopping --------------------------------------------------------------------------------------
    async def close(self) -> None:
        """Commit what is pending, hand unprocessed leases back. Store errors are logged, not raised:
        whatever is not acked is leased out again by the store (Redis reaper, SQLite reopen)."""
        self._closing = True
        self._wake.set()
        try:
            await self.flush()
        except Exception as exc:
            log.error(
                "could not commit %d outcome(s) at stop (%s); their requests will be fetched again",
                len(self.pending),
                exc,
            )
        leftover = list(self.held)
        if leftover:
            try:
                await self.backend.release(leftover)
                log.info("handed %d unprocessed request(s) back to the queue", len(leftover))
            except Exception as exc:
                log.error(
                    "could not hand back %d lease(s) (%s); they return when their lease expires", len(leftover), exc
                )
        self.held.clear()
        self.buffer.clear()


def commit_groups(batch: list[Outcome], limit: int) -> list[list[Outcome]]:
    """Split ``batch`` into consecutive commits of at most ``limit`` new requests each.

    An outcome with more requests than that is cut into request-only parts; its last part carries the
    ack, the items and the counters, so the lease is acked only once everything it produced is in."""
    groups: list[list[Outcome]] = []
    current: list[Outcome] = []
    size = 0
    for oc in batch:
        n = len(oc.requests)
        if n > limit:
            if current:
                groups.append(current)
                current, size = [], 0
            reqs = oc.requests
            for start in range(0, n - limit, limit):
                groups.append([Outcome(None, requests=reqs[start : start + limit])])
            tail = (n - 1) // limit * limit
            groups.append([Outcome(oc.lease_id, requests=reqs[tail:], items=oc.items, stats=oc.stats)])
            continue
        if size + n > limit and current:
            groups.append(current)
            current, size = [], 0
        current.append(oc)
        size += n
    if current:
        groups.append(current)
    return groups


def _add(total: CommitResult, res: CommitResult) -> None:
    total.enqueued += res.enqueued
    total.filtered += res.filtered
    total.items_stored += res.items_stored
    total.items_duplicate += res.items_duplicate
