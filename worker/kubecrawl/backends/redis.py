"""The shared store of roles ``master`` and ``slave``: one Redis holds the queue, fingerprints, leases and items.

Keys follow docs/contracts.md §3 and share the hash tag ``kc:{crawl}:`` so the Lua scripts (``lua/*.lua``,
run by EVALSHA) also work on Redis Cluster. The hot path is two scripts, each one round trip for a whole
batch: ``pop`` (reap expired leases, lease N requests with a deadline from the server clock) and
``commit`` (dedup + enqueue, content-dedup + XADD items, ack, counters). A Redis outage is waited out
with backoff; a commit retried after a lost reply is applied once (per-worker commit sequence).

Time is the server's (``TIME`` inside the scripts), so workers with skewed clocks agree on lease
deadlines and fingerprint ages. ``clock=`` overrides it for both (the scripts get ``now`` as an
argument): for tests only, and then every backend of the crawl must share that clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import StorageError, StorageFatal, StoreDataLost, WireFormatError
from ..request import _MAX_WIRE_BYTES, Request
from ..settings import Settings
from .base import (
    ROBOTS_ENTRY_MAX,
    Backend,
    CommitResult,
    FrontierStatus,
    HostLoad,
    Lease,
    Outcome,
    RobotsEntry,
    RoundInfo,
    StoreHealth,
    robots_entry_from_json,
    robots_entry_json,
)
from .bloom import INTSET_ENTRIES, BloomParams, bloom_offsets, bucket_count, set_member
from .frontier import MAX_CRAWL_DELAY, MAX_SLOT_WAIT, Politeness, request_slot

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how long a Redis outage is waited out before the process gives up (exit 1)
OUTAGE_LIMIT_S = 900.0
#: expired leases put back per pop
REAP_MAX = 256
#: a health probe (PING) that takes longer than this reports the store down
HEALTH_TIMEOUT_S = 2.0
#: one robots.txt call (robots_get/put/claim) that takes longer than this fails (the worker fetches itself)
ROBOTS_STORE_TIMEOUT_S = 5.0
#: one backoff call (a 429's Retry-After told to the store) waits this long at most
BACKOFF_TIMEOUT_S = 5.0
#: Bloom shards up to this many bytes are created by sending them whole
_BLOOM_SET_MAX = 64 << 20
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)
#: how often a wait on an unavailable Redis logs that it is still waiting
_STILL_WAITING_S = 60.0
#: hex digits of a popped payload's SHA1 sent with its ack (is a reaped copy the same request?)
_ACK_HASH = 12
#: Redis error codes that mean "not now": waited out with backoff like an outage, with a log line
#: saying what the operator can do. READONLY also drops the connections (a failover: reconnect)
_WAIT_CODES = {
    "LOADING": "redis is loading its dataset",
    "MASTERDOWN": "the replica lost its master",
    "BUSY": "redis is busy running a long script or function (SCRIPT KILL / FUNCTION KILL ends it)",
    "OOM": "redis is out of memory (maxmemory reached with noeviction): raise maxmemory or free memory",
    "READONLY": "redis is a read-only replica (a failover?): reconnecting until a master answers",
    "TRYAGAIN": "redis cluster is resharding",
    "CLUSTERDOWN": "redis cluster is down",
    "NOREPLICAS": "redis has not enough replicas for min-replicas-to-write",
}
#: Redis error codes that waiting never fixes
_FATAL_CODES = {
    "NOPERM": "the redis user lacks a permission (ACL)",
    "WRONGTYPE": "a key of this crawl holds the wrong type (another program writes kc:{crawl}: keys?)",
    "NOAUTH": "redis wants a password (set redis_password)",
    "WRONGPASS": "redis refused the password",
}


class StoreScriptError(Exception):
    """A Lua script of the store failed while running (a bug, or an entry it cannot handle).

    Not a :class:`StorageError`: the scheduler splits a failing commit to find the entry, and a pop
    that fails so stops the crawl with this message (exit 1)."""


def _error_code(exc: ResponseError) -> str:
    """The reply's error code: redis-py strips it from the message of the errors it maps to classes."""
    code = getattr(exc, "status_code", None)
    return str(code or str(exc).split(" ", 1)[0]).upper()


def crawl_prefix(crawl: str) -> str:
    """``kc:{crawl}:`` — the hash tag keeps every key of one crawl in one Redis Cluster slot."""
    return f"kc:{{{crawl}}}:"


class Keys:
    """Every key of one crawl (docs/contracts.md §3)."""

    def __init__(self, crawl: str) -> None:
        p = self.prefix = crawl_prefix(crawl)
        self.frontier = p + "frontier"  # HASH: queued total; per slot leased count, next-allowed ms, delay
        self.ready = p + "ready"  # ZSET: slots with work and a free concurrency slot -> next-allowed ms
        self.lease_hosts = p + "lease_hosts"  # HASH: lease id -> its download slot
        self.hosts = p + "hosts"  # ZSET: slot -> its queued + leased requests (removed at 0; for status)
        self.host_queue_prefix = p + "q:"  # + slot: ZSET of that slot's queued ids (score -priority)
        self.legacy_queue = p + "queue"  # the one queue of workers before the frontier (migrated at open)
        self.requests = p + "requests"
        self.leases = p + "leases"
        self.owners = p + "owners"
        self.items = p + "items"
        self.item_seen = p + "item_seen"
        self.stats = p + "stats"
        self.workers = p + "workers"
        self.meta = p + "meta"
        self.seen_ttl = p + "seen:ttl"
        self.robots = p + "robots"  # HASH: origin -> JSON of its robots.txt entry (backends/base.py RobotsEntry)

    def robots_claim(self, origin: str) -> str:
        """STRING (SET NX PX): the worker fetching ``origin``'s robots.txt right now."""
        return f"{self.prefix}robots_claim:{origin}"

    def cookie_jar(self, token: str) -> str:
        """HASH of one shared cookie jar (setting shared_cookies; kubecrawl/shared_cookies.py)."""
        return f"{self.prefix}cookies:{token}"

    def host_queue(self, slot: str) -> str:
        return self.host_queue_prefix + slot

    def seen_bucket(self, i: int) -> str:
        return f"{self.prefix}seen:{i}"

    def bloom_shard(self, i: int) -> str:
        return f"{self.prefix}seen:b{i}"


def queue_frontier_reads(p: Any, k: Keys, top: int) -> None:
    """Add to pipeline ``p`` (sync or async): server time, slots with work, the ``top`` busiest.

    O(log hosts + top) on the ``hosts`` ZSET the scripts keep, never a scan of every slot."""
    p.time()
    p.zcard(k.hosts)
    p.zrevrange(k.hosts, 0, top - 1, withscores=True)


def queue_slot_reads(p: Any, k: Keys, slots: list[bytes]) -> None:
    """Add to pipeline ``p``: each slot's queue length and its leased count, delay, Crawl-delay, next time."""
    prefix = k.host_queue_prefix.encode()
    for raw in slots:
        p.zcard(prefix + raw)
        p.hmget(k.frontier, [b"b:" + raw, b"d:" + raw, b"c:" + raw, b"n:" + raw])


def host_loads(slots: list[bytes], replies: list[Any], now_ms: int) -> list[HostLoad]:
    """The :class:`HostLoad` of each slot from the replies of :func:`queue_slot_reads`."""

    def ms(v: Any) -> float | None:
        return None if v is None else int(v) / 1000

    out = []
    for i, raw in enumerate(slots):
        queued, (busy, delay, crawl_delay, next_at) = replies[2 * i], replies[2 * i + 1]
        nxt = ms(next_at)
        out.append(
            HostLoad(
                raw.decode("utf-8", "replace"),
                int(queued),
                int(busy or 0),
                ms(delay),
                ms(crawl_delay),
                max(0.0, nxt - now_ms / 1000) if nxt is not None else 0.0,
            )
        )
    return out


def default_worker_id() -> str:
    """Stable across restarts where the platform gives one (pod name), unique per process otherwise.

    ``KUBECRAWL_WORKER_ID`` wins; inside Kubernetes the hostname is the pod name, which a restarted
    container keeps, so it reclaims its own leases at once. Elsewhere host + pid + random.
    """
    explicit = os.environ.get("KUBECRAWL_WORKER_ID")
    if explicit:
        return explicit
    host = socket.gethostname()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return host
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _load_lua(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def _commit_result(res: list[Any]) -> CommitResult:
    """commit.lua's reply; a replayed commit (reply lost, see commit.lua) answers without the marked count."""
    marked = int(res[4]) if len(res) > 4 else 0
    return CommitResult(int(res[0]), int(res[1]), int(res[2]), int(res[3]), marked)


class RedisBackend(Backend):
    """:class:`Backend` over one Redis (see module docstring)."""

    writes_output = False

    def __init__(
        self,
        client: aioredis.Redis,
        crawl: str,
        *,
        dedup: str = "set",
        capacity: int = 10_000_000,
        error_rate: float = 0.001,
        item_dedup: str = "skip",
        fingerprint_ttl: float | None = None,
        lease_seconds: float = 300,
        worker_id: str | None = None,
        spider_ref: str | None = None,
        clock: Callable[[], float] | None = None,
        politeness: Politeness | None = None,
        worker_cap: int = 0,
    ) -> None:
        self.r = client
        #: the most leases of one slot this worker holds at once (its concurrency; 0 = no cap): with
        #: ``concurrency_per_host`` above a worker's concurrency, the other workers get the rest
        self.worker_cap = max(0, int(worker_cap))
        self.politeness = politeness or Politeness()
        self.crawl = crawl
        self.k = Keys(crawl)
        self.dedup = dedup
        self.buckets = bucket_count(capacity)
        self.bloom = BloomParams.for_capacity(capacity, error_rate) if dedup == "bloom" else None
        self.item_dedup = item_dedup
        self.fingerprint_ttl = fingerprint_ttl
        self.lease_ms = int(lease_seconds * 1000)
        self.worker_id = worker_id or default_worker_id()
        self.spider_ref = spider_ref
        #: ``clock`` given: the scripts take ``now`` from it instead of the server's TIME (tests)
        self._client_clock = clock is not None
        self.clock = clock or time.time
        self.round_trips = 0  # client-side count of commands / scripts / pipelines sent
        self.calls: dict[str, int] = {}  # round trips by what they were for (logged at close)
        self._rt_reported = 0
        self._commit_seq = 0
        #: this process's incarnation: commit ids are unique across restarts of the same worker id
        self._incarnation = uuid.uuid4().hex[:12]
        #: commit ids this worker knows the store holds: the last acknowledged one and any sent whose
        #: reply never came; the store must hold one of them, or it lost data (commit.lua)
        self._committed_ids: list[str] = []
        self._commit_lock = asyncio.Lock()
        #: the crawl's epoch (guard.lua), read or created at :meth:`open`
        self.epoch = ""
        #: SHA1 prefix of each lease's payload as popped, sent with its ack
        self._lease_hash: dict[str, str] = {}
        self.rejected = 0
        self.reaped = 0
        self.reclaimed = 0
        guard = _load_lua("guard")
        sources = {n: guard + _load_lua(n) for n in ("pop", "commit", "release", "reject", "backoff")}
        sources.update({n: _load_lua(n) for n in ("heartbeat", "migrate", "robots_get", "robots_put")})
        sources["cycle"] = (
            f"{guard}local function kc_commit(KEYS, ARGV)\n{_load_lua('commit')}\nend\n"
            f"local function kc_pop(KEYS, ARGV)\n{_load_lua('pop')}\nend\n{_load_lua('cycle')}"
        )
        self._scripts = {n: client.register_script(src) for n, src in sources.items()}
        self._closed = False
        self._give_up_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings, crawl: str) -> RedisBackend:
        client = aioredis.Redis.from_url(
            settings.redis_url,
            password=settings.redis_password_value,
            socket_connect_timeout=5,
            socket_timeout=max(30.0, settings.download_timeout),
            health_check_interval=15,
        )
        return cls(
            client,
            crawl,
            dedup=settings.dedup,
            capacity=settings.bloom_capacity,
            error_rate=settings.bloom_error_rate,
            item_dedup=settings.item_dedup,
            fingerprint_ttl=settings.fingerprint_ttl,
            lease_seconds=settings.lease_seconds,
            spider_ref=settings.spider,
            politeness=Politeness(settings.concurrency_per_host, settings.download_delay, settings.slot_key),
            worker_cap=settings.concurrency,
        )

    # -- plumbing ------------------------------------------------------------------------------
    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one round trip; every Redis error is classified (docs/distributed.md, "Store errors").

        Waited out with backoff and a log line (every minute while it lasts), for up to
        :data:`OUTAGE_LIMIT_S`: connection errors and timeouts, and the "not now" replies of
        :data:`_WAIT_CODES` (LOADING, BUSY, OOM, READONLY, ...). Fatal at once (:class:`StorageFatal`,
        exit 1): wrong credentials or TLS, :data:`_FATAL_CODES`, and an outage past its limit.
        ``KCLOST`` (the store lost data, guard.lua / commit.lua) is :class:`StoreDataLost`. A script
        that fails while running is :class:`StoreScriptError`. Any other reply error is a
        :class:`StorageError` (the scheduler retries it for a while, then stops the crawl).
        NOSCRIPT never reaches here: the script objects load their script again and retry.
        """
        delay = 0.1
        down_since: float | None = None
        logged_at = 0.0
        while True:
            self.round_trips += 1
            self.calls[what] = self.calls.get(what, 0) + 1
            try:
                result = await fn()
            except (AuthenticationError, ssl.SSLError) as exc:
                # not an outage: waiting never fixes a wrong password or certificate
                raise StorageFatal(
                    f"redis refused the connection during {what}: {exc} (check redis_url, redis_password and TLS)"
                ) from None
            except (*_RETRYABLE, ResponseError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # a cancellation surfaced as a timeout: never retry it away (the task must stop)
                    raise asyncio.CancelledError from exc
                if isinstance(exc, _RETRYABLE):
                    why = "redis unreachable"
                else:
                    why = self._classify(what, exc)
                    if _error_code(exc) == "READONLY":
                        # the connections lead to a replica now: new ones may reach the new master
                        await self.r.connection_pool.disconnect()
                now = time.monotonic()
                if down_since is None:
                    down_since = logged_at = now
                    log.warning("%s during %s (%s); waiting with backoff", why, what, exc)
                elif now - logged_at >= _STILL_WAITING_S:
                    logged_at = now
                    log.warning("%s during %s for %.0fs (%s); still waiting", why, what, now - down_since, exc)
                if now - down_since > OUTAGE_LIMIT_S:
                    raise StorageFatal(f"{why} for {now - down_since:.0f}s during {what}: {exc}") from None
                if self._closed or (self._give_up_at is not None and now > self._give_up_at):
                    raise StorageError(f"{why} during {what} while stopping: {exc}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
                continue
            if down_since is not None:
                log.info("redis answers %s again after %.1fs", what, time.monotonic() - down_since)
            return result

    def _classify(self, what: str, exc: ResponseError) -> str:
        """The reason for a reply error that is waited out; raises for every other one."""
        code = _error_code(exc)
        wait = _WAIT_CODES.get(code)
        if wait is not None:
            return wait
        msg = str(exc)
        if code == "KCLOST":
            raise StoreDataLost(
                f"the store lost data of crawl {self.crawl!r}: {msg[7:]}. Pages may be missing; the crawl is marked "
                f"(field 'lost' of {self.k.meta}, shown by kubecrawl status) and every worker stops. Restart the "
                "crawl, or delete that field to carry on knowingly"
            ) from None
        if code in _FATAL_CODES:
            raise StorageFatal(f"redis refused {what}: {msg} ({_FATAL_CODES[code]})") from None
        if "user_script" in msg or "Error running script" in msg or "@user_script" in msg:
            raise StoreScriptError(f"the {what} script failed in redis: {msg}") from None
        raise StorageError(f"redis refused {what}: {msg}") from None

    def stopping(self) -> None:
        """The process is stopping: outages are waited out for a few more seconds only."""
        if self._give_up_at is None:
            self._give_up_at = time.monotonic() + 5.0

    def _now_arg(self) -> int | str:
        """``now`` for a script: the injected clock in ms, or '' (the script reads the server's TIME)."""
        return int(self.clock() * 1000) if self._client_clock else ""

    def counters(self) -> dict[str, int]:
        return {**super().counters(), "round_trips": self.round_trips}

    async def health(self) -> StoreHealth:
        """One PING bounded by :data:`HEALTH_TIMEOUT_S`, no retry: an outage is reported, not waited out."""
        try:
            await asyncio.wait_for(self.r.ping(), HEALTH_TIMEOUT_S)
        except Exception as exc:
            return StoreHealth(False, f"redis unreachable: {exc!r}")
        return StoreHealth(True)

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Callable[[], Awaitable[Any]]:
        script = self._scripts[name]
        return lambda: script(keys=keys, args=args)

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        await self._call("ping", self.r.ping)
        if self.dedup == "set":
            await self._ensure_intset_entries()
        if self.bloom is not None:
            await self._allocate_bloom()
        await self._migrate_global_queue()
        await self._open_epoch()
        n = await self._call(
            "reclaim own leases",
            self._script("release", self._release_keys(), [self.worker_id, "all", *self._release_args()]),
        )
        if n:
            self.reclaimed += int(n)
            log.info("reclaimed %d request(s) this worker (%s) held before a restart", n, self.worker_id)

    async def _open_epoch(self) -> None:
        """Read the crawl's epoch, creating it if this is the crawl's first worker (guard.lua).

        A crawl from before epochs gets one now. A crawl already marked as having lost data is refused.
        """
        k = self.k

        async def run() -> list[Any]:
            async with self.r.pipeline(transaction=True) as p:
                p.hsetnx(k.meta, "epoch", uuid.uuid4().hex[:16])
                p.hmget(k.meta, ["epoch", "lost"])
                return list(await p.execute())

        _created, (epoch, lost) = await self._call("open", run)
        if lost is not None:
            raise StoreDataLost(
                f"crawl {self.crawl!r} is marked as having lost data: {lost.decode('utf-8', 'replace')}. "
                f"Restart the crawl (new --crawl name, or delete its keys), or delete field 'lost' of {k.meta} "
                "to carry on knowingly"
            )
        self.epoch = epoch.decode()

    async def _migrate_global_queue(self) -> None:
        """Requests queued before the per-host frontier (one ``queue`` ZSET) go to their slots' queues.

        Nothing queued by an older worker is left behind: 1,000 ids per round trip, until it is empty.
        """
        k = self.k
        old = k.legacy_queue
        moved = 0
        while True:
            entries: list[Any] = await self._call("migrate", lambda: self.r.zrange(old, 0, 999, withscores=True))
            if not entries:
                break
            ids = [rid for rid, _ in entries]
            payloads = await self._call("migrate", lambda ids=ids: self.r.hmget(k.requests, ids))  # type: ignore[misc]
            args: list[Any] = [self.politeness.per_host, k.host_queue_prefix]
            for (rid, score), raw in zip(entries, payloads, strict=True):
                slot = ""
                if raw is not None:
                    try:
                        slot = request_slot(Request.from_wire(raw), self.politeness.slot_key)
                    except WireFormatError:
                        pass  # moved as it is: rejected and counted when popped
                args += [rid, score, slot]
            moved += int(
                await self._call(
                    "migrate", self._script("migrate", [old, k.frontier, k.ready, k.requests, k.hosts], args)
                )
            )
        if moved:
            log.info("moved %d request(s) queued by an older worker into the per-host frontier", moved)

    async def _allocate_bloom(self) -> None:
        """Create missing Bloom shards at their final size in one allocation.

        Growing a bitmap bit by bit leaves Redis's greedy string pre-allocation (up to 1 MB) as slack;
        a filter created whole costs its bits and the allocator's rounding, nothing more.
        """
        assert self.bloom is not None
        nbytes = (self.bloom.shard_bits + 7) // 8
        for shard in range(self.bloom.shards):
            key = self.k.bloom_shard(shard)
            if await self._call("exists", lambda key=key: self.r.exists(key)):  # type: ignore[misc]
                continue
            if nbytes <= _BLOOM_SET_MAX:
                await self._call("allocate bloom", lambda key=key: self.r.set(key, bytes(nbytes), nx=True))  # type: ignore[misc]
            else:  # too big to send: grow once to the last bit (slack ≤ 1 MB, negligible at this size)
                await self._call("allocate bloom", lambda key=key: self.r.setbit(key, self.bloom.shard_bits - 1, 0))  # type: ignore[misc,union-attr]

    async def _ensure_intset_entries(self) -> None:
        """Ask Redis to keep fingerprint buckets as packed intsets (best effort: CONFIG may be disabled)."""
        try:
            cur: dict[Any, Any] = dict(await self.r.config_get("set-max-intset-entries"))
            value = cur.get(b"set-max-intset-entries", cur.get("set-max-intset-entries", 0))
            if int(value) < INTSET_ENTRIES:
                await self.r.config_set("set-max-intset-entries", INTSET_ENTRIES)
        except Exception as exc:
            log.warning(
                "cannot raise set-max-intset-entries to %d (%s): fingerprints will take more memory; "
                "set it in redis.conf",
                INTSET_ENTRIES,
                exc,
            )

    async def close(self) -> None:
        self._closed = True
        log.debug("redis round trips of this process by call: %s", self.calls)
        try:
            # a worker that stops cleanly leaves the live list at once instead of after 30 s
            await asyncio.wait_for(self.r.zrem(self.k.workers, self.worker_id), 2.0)
        except Exception as exc:
            log.debug("could not remove %s from the workers list: %s", self.worker_id, exc)
        try:
            await self.r.aclose()
        except Exception as exc:
            log.debug("closing redis client: %s", exc)

    # -- queue ---------------------------------------------------------------------------------
    def _release_keys(self) -> list[str]:
        k = self.k
        return [k.frontier, k.ready, k.requests, k.leases, k.owners, k.lease_hosts, k.meta, k.hosts]

    def _release_args(self) -> list[Any]:
        return [self.politeness.per_host, self.k.host_queue_prefix, self.epoch]

    def _pop_keys(self) -> list[str]:
        k = self.k
        return [k.frontier, k.ready, k.requests, k.leases, k.owners, k.lease_hosts, k.stats, k.meta, k.hosts]

    def _pop_args(self, n: int) -> list[Any]:
        pol = self.politeness
        return [
            n,
            self.worker_id,
            self.lease_ms,
            _MAX_WIRE_BYTES,
            REAP_MAX,
            self._now_arg(),
            pol.per_host,
            int(pol.delay * 1000),
            random.randrange(1, 2**31),
            self.k.host_queue_prefix,
            self.epoch,
            self.worker_cap,
        ]

    async def pop(self, n: int) -> list[Lease]:
        res = await self._call("pop", self._script("pop", self._pop_keys(), self._pop_args(n)))
        return await self._leases(res)

    async def _leases(self, res: list[Any]) -> list[Lease]:
        """The leases of a pop reply (pop.lua); undecodable payloads are rejected and counted."""
        k = self.k
        reaped, huge, wait = int(res[0]), int(res[1]), int(res[2])
        self.next_ready = None if wait < 0 else wait / 1000
        if reaped:
            self.reaped += reaped
            log.info("%d expired lease(s) went back to the queue", reaped)
        if huge:
            self.rejected += huge
            log.error("rejected %d oversized request payload(s) in %s", huge, k.requests)
        leases: list[Lease] = []
        bad: list[str] = []
        hashes = self._lease_hash
        for i in range(3, len(res), 2):
            rid = res[i].decode() if isinstance(res[i], bytes) else str(res[i])
            raw = res[i + 1]
            try:
                leases.append(Lease(rid, Request.from_wire(raw)))
            except WireFormatError as exc:
                log.error("rejected request %s from %s: %s", rid, k.requests, exc)
                bad.append(rid)
                continue
            hashes[rid] = hashlib.sha1(raw if isinstance(raw, bytes) else str(raw).encode()).hexdigest()[:_ACK_HASH]
        if bad:
            self.rejected += len(bad)
            await self._call(
                "reject",
                self._script(
                    "reject",
                    [k.frontier, k.ready, k.requests, k.leases, k.owners, k.lease_hosts, k.stats, k.meta, k.hosts],
                    [self.politeness.per_host, k.host_queue_prefix, self.epoch, *bad],
                ),
            )
        return leases

    def _request_args(self, req: Request, keys: list[str], index: dict[str, int], mark: bool = False) -> list[Any]:
        fp = req.fingerprint
        if self.bloom is not None:
            shard, offs = bloom_offsets(fp, self.bloom)
            key = self.k.bloom_shard(shard)
            member: str = ",".join(map(str, offs))
        else:
            bucket, m = set_member(fp, self.buckets)
            key = self.k.seen_bucket(bucket)
            member = str(m)
        kidx = index.get(key)
        if kidx is None:
            keys.append(key)
            kidx = index[key] = len(keys)  # Lua KEYS are 1-based
        ttl = req.fingerprint_ttl if req.fingerprint_ttl is not None else self.fingerprint_ttl
        if mark:  # a fingerprint to record only (Outcome.mark): no payload, no slot
            return ["m", kidx, member, "" if ttl is None else int(ttl * 1000), fp, 0, "", ""]
        return [
            "d" if req.dont_filter else "n",
            kidx,
            member,
            "" if ttl is None else int(ttl * 1000),
            fp,
            -req.priority,
            req.to_wire(),
            request_slot(req, self.politeness.slot_key),
        ]

    def _commit_call(self, outcomes: list[Outcome]) -> tuple[list[str], list[Any], str]:
        """Keys, arguments and commit id of one commit.lua call (round trips counted up to it)."""
        k = self.k
        keys = [k.frontier, k.requests, k.leases, k.owners, k.items, k.item_seen, k.stats, k.meta, k.seen_ttl]
        keys += [k.ready, k.lease_hosts, k.hosts]
        index: dict[str, int] = {}
        req_args: list[Any] = []
        item_args: list[Any] = []
        # id, ms since answered ('' = nothing sent), Crawl-delay ms and AutoThrottle delay ms ('' = none), hash
        acks: list[Any] = []
        stats: dict[str, int] = {}
        nreq = nitem = 0
        now_mono = time.monotonic()
        hashes = self._lease_hash
        for oc in outcomes:
            for req in oc.requests:
                req_args.extend(self._request_args(req, keys, index))
                nreq += 1
            for req in oc.mark:
                req_args.extend(self._request_args(req, keys, index, mark=True))
                nreq += 1
            for rec in oc.items:
                item_args.extend((rec.key, rec.content_hash, rec.data))
                nitem += 1
            if oc.lease_id is not None:
                ago = "" if oc.answered is None else int((now_mono - oc.answered) * 1000)
                cd = "" if oc.crawl_delay is None else int(min(max(oc.crawl_delay, 0.0), MAX_CRAWL_DELAY) * 1000)
                td = "" if oc.throttle_delay is None else int(min(max(oc.throttle_delay, 0.0), MAX_SLOT_WAIT) * 1000)
                acks.extend((oc.lease_id, ago, cd, td, hashes.get(oc.lease_id, "")))
            for name, v in oc.stats.items():
                stats[name] = stats.get(name, 0) + v
        # this commit included: round trips since the last report
        rt = self.round_trips + 1 - self._rt_reported
        stats["round_trips"] = stats.get("round_trips", 0) + rt
        stat_args: list[Any] = []
        for name, v in stats.items():
            if v:
                stat_args.extend((name, int(v)))
        self._commit_seq += 1
        commit_id = f"{self._incarnation}.{self._commit_seq}"
        args: list[Any] = [
            self.dedup,
            self.item_dedup,
            self.worker_id,
            commit_id,
            nreq,
            nitem,
            len(acks) // 5,
            len(stat_args) // 2,
            self._now_arg(),
            self.politeness.per_host,
            k.host_queue_prefix,
            self.epoch,
            ",".join(self._committed_ids),
        ]
        args += req_args + item_args + acks + stat_args
        return keys, args, commit_id

    def _committed(self, outcomes: list[Outcome], commit_id: str) -> None:
        self._rt_reported = self.round_trips
        self._committed_ids = [commit_id]
        for oc in outcomes:
            if oc.lease_id is not None:
                self._lease_hash.pop(oc.lease_id, None)

    async def _committing(self, outcomes: list[Outcome], call: Callable[[list[str], list[Any]], Awaitable[T]]) -> T:
        """Run one commit (alone or with a pop), one at a time: each names the last one the store must hold."""
        async with self._commit_lock:
            keys, args, commit_id = self._commit_call(outcomes)
            try:
                res = await call(keys, args)
            except BaseException:
                # it may have been applied (a reply lost, a wait given up): the store may hold it from now on
                self._committed_ids = [*self._committed_ids[-7:], commit_id]
                raise
            self._committed(outcomes, commit_id)
            return res

    async def commit(self, outcomes: list[Outcome]) -> CommitResult:
        res = await self._committing(
            outcomes, lambda keys, args: self._call("commit", self._script("commit", keys, args))
        )
        return _commit_result(res)

    async def commit_pop(self, outcomes: list[Outcome], n: int) -> tuple[CommitResult, list[Lease]]:
        """Commit, then pop up to ``n`` from what the acks freed, in one round trip (cycle.lua)."""
        if n <= 0:
            return await self.commit(outcomes), []
        if not outcomes:
            return CommitResult(), await self.pop(n)

        def cycle(keys: list[str], args: list[Any]) -> Awaitable[Any]:
            pop_keys = self._pop_keys()
            return self._call(
                "commit", self._script("cycle", keys + pop_keys, [len(keys), len(args), *args, *self._pop_args(n)])
            )

        res, popped = await self._committing(outcomes, cycle)
        return _commit_result(res), await self._leases(popped)

    async def release(self, lease_ids: list[str]) -> None:
        if not lease_ids:
            return
        await self._call(
            "release",
            self._script("release", self._release_keys(), [self.worker_id, "ids", *self._release_args(), *lease_ids]),
        )
        for rid in lease_ids:
            self._lease_hash.pop(rid, None)

    async def backoff(self, slot: str, seconds: float) -> None:
        """``n:<slot>`` raised to the server's now + ``seconds`` and the slot re-scored in READY
        (backoff.lua): one round trip, one attempt bounded by :data:`BACKOFF_TIMEOUT_S` (no outage wait;
        the caller logs a failure and carries on: the worker that saw the answer still waits)."""
        k = self.k
        ms = int(min(max(seconds, 0.0), MAX_SLOT_WAIT) * 1000)
        self.round_trips += 1
        self.calls["backoff"] = self.calls.get("backoff", 0) + 1
        script = self._script(
            "backoff",
            [k.frontier, k.ready, k.meta],
            [slot, ms, self._now_arg(), self.epoch, self.politeness.per_host, k.host_queue_prefix],
        )
        await asyncio.wait_for(script(), BACKOFF_TIMEOUT_S)

    async def queued(self) -> int:
        return int(await self._call("queued", lambda: self.r.hget(self.k.frontier, "queued")) or 0)

    async def in_flight(self) -> int:
        return int(await self._call("zcard", lambda: self.r.zcard(self.k.leases)))

    async def has_fingerprints(self, requests: list[Request]) -> list[bool]:
        """commit.lua's filter test, read only: an unexpired age in ``seen:ttl`` decides, else the
        set bucket or Bloom shard holds it. One pipelined round trip."""
        k = self.k

        async def run() -> list[Any]:
            async with self.r.pipeline(transaction=False) as p:
                p.time()
                for req in requests:
                    fp = req.fingerprint
                    p.zscore(k.seen_ttl, fp)
                    if self.bloom is not None:
                        shard, offs = bloom_offsets(fp, self.bloom)
                        for off in offs:
                            p.getbit(k.bloom_shard(shard), off)
                    else:
                        bucket, member = set_member(fp, self.buckets)
                        p.sismember(k.seen_bucket(bucket), str(member))
                return list(await p.execute())

        res = await self._call("fingerprints", run)
        sec, usec = res[0]
        now = self.clock() * 1000 if self._client_clock else int(sec) * 1000 + int(usec) // 1000
        out: list[bool] = []
        i = 1
        width = 1 if self.bloom is None else self.bloom.hashes
        for _ in requests:
            expires, plain = res[i], res[i + 1 : i + 1 + width]
            i += 1 + width
            out.append(float(expires) > now if expires is not None else all(bool(b) for b in plain))
        return out

    async def fingerprint_count(self) -> int:
        return int(await self._call("seen", lambda: self.r.hget(self.k.stats, "seen")) or 0)

    async def frontier_status(self, top: int = 10) -> FrontierStatus | None:
        """Two pipelined round trips, O(log hosts + top): the ``hosts`` ZSET, then the busiest slots' fields."""
        k = self.k

        async def head() -> list[Any]:
            async with self.r.pipeline(transaction=False) as p:
                queue_frontier_reads(p, k, top)
                return list(await p.execute())

        (sec, usec), count, busiest = await self._call("frontier status", head)
        slots = [raw for raw, _ in busiest]
        if not slots:
            return FrontierStatus(int(count), [])

        async def detail() -> list[Any]:
            async with self.r.pipeline(transaction=False) as p:
                queue_slot_reads(p, k, slots)
                return list(await p.execute())

        replies = await self._call("frontier status", detail)
        now_ms = int(self.clock() * 1000) if self._client_clock else int(sec) * 1000 + int(usec) // 1000
        return FrontierStatus(int(count), host_loads(slots, replies, now_ms))

    # -- rounds ----------------------------------------------------------------------------------
    async def begin_round(self) -> int:
        k = self.k

        async def run() -> int:
            async with self.r.pipeline(transaction=True) as p:
                p.hincrby(k.meta, "round", 1)
                p.hset(k.meta, mapping={"seeding": 1, "round_started_at": f"{self.clock():.3f}"})
                if self.spider_ref:
                    p.hset(k.meta, "spider", self.spider_ref)
                res = await p.execute()
            return int(res[0])

        return await self._call("begin_round", run)

    async def end_seeding(self, round_no: int) -> None:
        await self._call(
            "end_seeding", lambda: self.r.hset(self.k.meta, mapping={"seeded_round": round_no, "seeding": 0})
        )

    async def round_info(self) -> RoundInfo:
        rnd, seeding, seeded = await self._call(
            "round_info", lambda: self.r.hmget(self.k.meta, ["round", "seeding", "seeded_round"])
        )
        return RoundInfo(int(rnd or 0), seeding == b"1", int(seeded or 0))

    async def is_complete(self) -> bool:
        k = self.k

        async def run() -> list[Any]:
            async with self.r.pipeline(transaction=True) as p:
                p.hmget(k.meta, ["round", "seeding", "epoch", "lost"])
                p.hget(k.frontier, "queued")
                p.zcard(k.leases)
                return list(await p.execute())

        (rnd, seeding, epoch, lost), queued, leased = await self._call("is_complete", run)
        if self.epoch and (lost is not None or epoch is None or epoch.decode() != self.epoch):
            # the scripts' guard says why (and marks the crawl): a store that lost data is never complete
            await self._call("pop", self._script("pop", self._pop_keys(), self._pop_args(0)))
            raise StoreDataLost(f"the store lost data of crawl {self.crawl!r}")
        return int(rnd or 0) >= 1 and seeding != b"1" and int(queued or 0) == 0 and leased == 0

    # -- robots.txt (shared by the crawl's workers) ---------------------------------------------
    shares_robots = True

    async def _once(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One round trip with no outage wait, bounded by :data:`ROBOTS_STORE_TIMEOUT_S` (robots.txt:
        the caller fetches it itself when the store does not answer)."""
        self.round_trips += 1
        self.calls[what] = self.calls.get(what, 0) + 1
        return await asyncio.wait_for(fn(), ROBOTS_STORE_TIMEOUT_S)

    async def robots_get(self, origin: str) -> RobotsEntry | None:
        script = self._scripts["robots_get"]
        res = await self._once("robots", lambda: script(keys=[self.k.robots], args=[origin, ROBOTS_ENTRY_MAX]))
        size = int(res[0])
        if size == 0:
            return None
        if len(res) < 2:
            raise WireFormatError(
                f"robots.txt entry of {origin} in {self.k.robots} is {size} bytes (at most {ROBOTS_ENTRY_MAX})"
            )
        entry = robots_entry_from_json(res[1])
        return entry if entry.expires > self.clock() else None

    async def robots_put(self, origin: str, kind: str, body: str, ttl: float, why: str = "") -> None:
        now = self.clock()
        data = robots_entry_json(RobotsEntry(kind, body, now, now + ttl, why))
        script = self._scripts["robots_put"]
        keys = [self.k.robots, self.k.robots_claim(origin)]
        await self._once("robots", lambda: script(keys=keys, args=[origin, data, self.worker_id]))

    async def robots_claim(self, origin: str, seconds: float) -> bool:
        key = self.k.robots_claim(origin)
        ms = max(1, int(seconds * 1000))
        return bool(await self._once("robots", lambda: self.r.set(key, self.worker_id, nx=True, px=ms)))

    async def heartbeat(self, worker_id: str) -> None:
        """Record this store's worker id (the lease owner), not the engine's per-run id, as alive.

        One attempt, no outage wait: the engine logs a failed heartbeat and carries on.
        """
        self.round_trips += 1
        await self._scripts["heartbeat"](keys=[self.k.workers], args=[self.worker_id])
