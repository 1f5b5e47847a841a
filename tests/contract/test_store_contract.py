"""The store contract (docs/contracts.md, "The store"): memory, SQLite and Redis give the same answers.

Every test runs on each store kind through the same calls the scheduler makes; only what a store
cannot have is left out (memory does not outlive its process; lease expiry is a shared-store matter).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from kubecrawl.backends.base import ItemRecord, Lease, Outcome, RoundInfo, fingerprint_rule
from kubecrawl.backends.redis import RedisBackend, default_worker_id
from kubecrawl.request import Request
from tests.contract.conftest import Stores
from tests.helpers.redis_server import RedisServer

BASE = "http://127.0.0.1:9"


def req(path: str, **kw: Any) -> Request:
    return Request(BASE + path, **kw)


def seed(*paths: str, **kw: Any) -> list[Outcome]:
    return [Outcome(None, requests=[req(p, **kw) for p in paths])]


def paths(leases: list[Lease]) -> list[str]:
    return [lease.request.url[len(BASE) :] for lease in leases]


def item(**fields: Any) -> ItemRecord:
    return ItemRecord.build(fields, ["url"])


# -- identity, clock, health, counters ----------------------------------------------------------------


async def test_every_store_names_its_lease_owner_and_reports_its_health_and_counters(stores: Stores) -> None:
    a = await stores.open()
    assert isinstance(a.worker_id, str) and a.worker_id
    assert a.clock is stores.clock
    assert (await a.health()).ok
    counters = a.counters()
    assert {"rejected": 0, "reaped": 0, "reclaimed": 0}.items() <= counters.items()
    if stores.kind == "redis":
        assert counters["round_trips"] > 0  # open itself talked to the server
    else:
        b = stores.make()
        assert b.worker_id != a.worker_id  # local stores: unique per process (and per store)


def test_redis_keeps_the_platform_worker_id_unless_given_one(
    shared_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(shared_redis.url)
    assert RedisBackend(client, "id", worker_id="slave-3").worker_id == "slave-3"
    monkeypatch.setenv("KUBECRAWL_WORKER_ID", "crawl-slave-7")  # as a pod would get it
    assert default_worker_id() == "crawl-slave-7"
    assert RedisBackend(client, "id").worker_id == "crawl-slave-7"


async def test_a_closed_sqlite_store_or_a_stopped_redis_reports_unhealthy_without_waiting(
    tmp_path: Any, redis_server: RedisServer
) -> None:
    import redis.asyncio as aioredis

    from kubecrawl.backends.sqlite import SQLiteBackend

    s = SQLiteBackend(tmp_path / "state")
    await s.open()
    await s.close()
    assert not (await s.health()).ok
    r = RedisBackend(aioredis.Redis.from_url(redis_server.url), "h")
    await r.open()
    assert (await r.health()).ok
    redis_server.stop()
    health = await r.health()  # one PING bounded by HEALTH_TIMEOUT_S, no outage wait
    assert not health.ok and "redis unreachable" in health.detail
    await r.close()


# -- request fingerprints ------------------------------------------------------------------------------


async def test_a_new_request_is_admitted_once_and_a_seen_one_filtered(fingerprint_stores: Stores) -> None:
    b = await fingerprint_stores.open()
    res = await b.commit(seed("/a", "/b", "/a"))
    assert (res.enqueued, res.filtered) == (2, 1)
    res = await b.commit([Outcome(None, requests=[req("/b"), req("/c")]), Outcome(None, requests=[req("/c")])])
    assert (res.enqueued, res.filtered) == (1, 2)
    assert await b.queued() == 3


async def test_the_fingerprint_is_method_canonical_url_and_body(stores: Stores) -> None:
    b = await stores.open()
    res = await b.commit(
        [
            Outcome(
                None,
                requests=[
                    req("/p?b=2&a=1"),
                    req("/p?a=1&b=2"),  # the same canonical URL
                    req("/p?a=1&b=2#frag"),  # fragments do not count
                    req("/p?a=1&b=2", method="POST"),
                    req("/p?a=1&b=2", method="POST", body=b"x"),
                    req("/p?a=1&b=2", method="POST", body=b"x"),
                ],
            )
        ]
    )
    assert (res.enqueued, res.filtered) == (3, 3)


async def test_dont_filter_admits_every_time_and_records_nothing(stores: Stores) -> None:
    b = await stores.open()
    assert (await b.commit(seed("/a", "/a", dont_filter=True))).enqueued == 2
    # dont_filter did not record the fingerprint (Scrapy's rule): a plain request is still new
    assert (await b.commit(seed("/a"))).enqueued == 1
    assert (await b.commit(seed("/a", dont_filter=True))).enqueued == 1
    assert (await b.commit(seed("/a"))).filtered == 1
    assert await b.queued() == 4


# One step: (seconds to advance the clock first, the request's age (None: none), admitted?)
Step = tuple[float, float | None, bool]

TTL_SCENARIOS: dict[str, list[Step]] = {
    "ttl-only": [
        (0, 100, True),
        (50, 100, False),  # younger than its age: filtered
        (49, 100, False),
        (2, 100, True),  # 101 s old: admitted again, ageing restarts
        (99, 100, False),
        (2, 100, True),
    ],
    "without-then-with": [
        (0, None, True),
        (10, None, False),
        (10, 100, False),  # seen without an age; asked with one: filtered, ageing from now
        (99, 100, False),
        (0, None, False),  # ageing now, not yet expired: filtered for plain requests too
        (2, 100, True),  # 101 s after the first request with an age
        (1, 100, False),
    ],
    "with-then-without": [
        (0, 100, True),
        (50, None, False),  # its age is not over: filtered
        (51, None, True),  # its age is over: admitted, and from now on it never expires
        (1000, None, False),
        (1000, 100, False),  # asked with an age again: filtered, ageing from now
        (101, None, True),
    ],
    "ages-differ-per-request": [
        (0, 100, True),
        (20, 10, False),  # the stored expiry decides, not this request's shorter age
        (81, 10, True),
        (5, 100, False),  # stored with age 10 at the last admission
        (6, 100, True),
    ],
}


@pytest.mark.parametrize("scenario", sorted(TTL_SCENARIOS))
async def test_fingerprint_age_transitions_give_the_same_answers_on_every_store(
    fingerprint_stores: Stores, scenario: str
) -> None:
    b = await fingerprint_stores.open()
    answers = []
    for advance, ttl, _ in TTL_SCENARIOS[scenario]:
        fingerprint_stores.clock.advance(advance)
        res = await b.commit(seed("/x", fingerprint_ttl=ttl))
        assert res.enqueued + res.filtered == 1
        answers.append(res.enqueued == 1)
    assert answers == [admitted for _, _, admitted in TTL_SCENARIOS[scenario]]


@pytest.mark.parametrize("seed_no", [1, 2, 3])
async def test_random_age_sequences_match_the_rule_on_every_store(fingerprint_stores: Stores, seed_no: int) -> None:
    """60 random steps over three URLs: ages, no age, dont_filter and clock jumps, against the rule itself."""
    rnd = random.Random(seed_no)
    b = await fingerprint_stores.open()
    model: dict[str, float] = {}
    for _ in range(60):
        fingerprint_stores.clock.advance(rnd.choice([0, 1, 5, 30, 61, 200]))
        path = rnd.choice(["/x", "/y", "/z"])
        ttl = rnd.choice([None, None, 10, 60, 100])
        dont_filter = rnd.random() < 0.1
        if dont_filter:
            expected = True
        else:
            expected, new = fingerprint_rule(model.get(path), ttl, fingerprint_stores.clock())
            if new is not None:
                model[path] = new
        res = await b.commit(seed(path, fingerprint_ttl=ttl, dont_filter=dont_filter))
        assert res.enqueued == int(expected), (path, ttl, dont_filter, fingerprint_stores.clock())


async def test_the_crawl_wide_fingerprint_age_applies_to_requests_without_their_own(
    fingerprint_stores: Stores,
) -> None:
    b = await fingerprint_stores.open(fingerprint_ttl=60)
    clock = fingerprint_stores.clock
    assert (await b.commit(seed("/a", "/b"))).enqueued == 2
    clock.advance(30)
    assert (await b.commit(seed("/a"))).filtered == 1
    assert (await b.commit(seed("/b", fingerprint_ttl=10))).filtered == 1  # stored expiry decides
    clock.advance(31)
    assert (await b.commit(seed("/a", "/b"))).enqueued == 2


@pytest.mark.parametrize("dont_filter", [False, True])
async def test_a_commit_that_fails_applies_nothing(stores: Stores, dont_filter: bool) -> None:
    class Unfingerprintable(Request):
        __slots__ = ()

        @property
        def fingerprint(self) -> bytes:
            raise ValueError("Port out of range 0-65535")

    b = await stores.open()
    await b.commit(seed("/a"))
    (lease,) = await b.pop(1)
    bad = Outcome(
        lease.id,
        requests=[req("/new"), Unfingerprintable("http://example.com:66000/x", dont_filter=dont_filter)],
        items=[item(url="u1")],
        stats={"pages": 1},
    )
    with pytest.raises(ValueError, match="Port out of range"):
        await b.commit([bad])
    assert await b.in_flight() == 1 and await b.queued() == 0  # the lease is still held
    assert stores.stored_items() == []
    res = await b.commit([Outcome(lease.id, requests=[req("/new")], items=[item(url="u1")])])
    assert (res.enqueued, res.items_stored) == (1, 1)  # "/new" and "u1" were never recorded
    assert await b.in_flight() == 0


# -- items -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "stored"),
    [
        # item sequence: u1 v1, u1 v1, u1 v2, u1 v1, u2 v1
        ("skip", [("u1", 1), ("u2", 1)]),
        ("update", [("u1", 1), ("u1", 2), ("u1", 1), ("u2", 1)]),
        ("off", [("u1", 1), ("u1", 1), ("u1", 2), ("u1", 1), ("u2", 1)]),
    ],
)
async def test_item_dedup_modes_store_what_they_say(stores: Stores, mode: str, stored: list[tuple[str, int]]) -> None:
    b = await stores.open(item_dedup=mode)
    seq = [("u1", 1), ("u1", 1), ("u1", 2), ("u1", 1), ("u2", 1)]
    # two outcomes in one commit, then one commit per item: dedup holds inside and across commits
    first = await b.commit([Outcome(None, items=[item(url=u, v=v)]) for u, v in seq[:2]])
    results = [first] + [await b.commit([Outcome(None, items=[item(url=u, v=v)])]) for u, v in seq[2:]]
    assert sum(r.items_stored for r in results) == len(stored)
    assert sum(r.items_duplicate for r in results) == len(seq) - len(stored)
    assert [(i["url"], i["v"]) for i in stores.stored_items()] == stored


async def test_items_keep_their_json_exactly(stores: Stores) -> None:
    b = await stores.open(item_dedup="off")
    data = {"url": "u", "title": "标题 — ünïcödé", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    await b.commit([Outcome(None, items=[ItemRecord.build(data, ["url"])])])
    assert stores.stored_items() == [data]


# -- queue order, leases, release ---------------------------------------------------------------------


async def test_pop_gives_highest_priority_first_then_arrival_order(stores: Stores) -> None:
    b = await stores.open()
    await b.commit(
        [
            Outcome(None, requests=[req("/a"), req("/hi1", priority=5), req("/b")]),
            Outcome(None, requests=[req("/low", priority=-1), req("/hi2", priority=5)]),
        ]
    )
    await b.commit(seed("/c", "/d"))
    await b.commit(seed("/hi3", priority=5))
    first = await b.pop(3)
    assert paths(first) == ["/hi1", "/hi2", "/hi3"]
    assert await b.queued() == 5 and await b.in_flight() == 3
    assert paths(await b.pop(100)) == ["/a", "/b", "/c", "/d", "/low"]
    assert await b.pop(5) == []
    assert await b.queued() == 0 and await b.in_flight() == 8


async def test_a_popped_request_keeps_everything_it_was_committed_with(stores: Stores) -> None:
    b = await stores.open()
    r = Request(
        BASE + "/full",
        "parse_item",
        method="POST",
        headers={"X-A": "1"},
        body=b"k=v",
        meta={"round": 3, "depth": 2, "s": "é"},
        priority=7,
        cb_kwargs={"cat": "news"},
        retries=1,
        fingerprint_ttl=30.0,
    )
    await b.commit([Outcome(None, requests=[r])])
    (lease,) = await b.pop(1)
    got = lease.request
    assert got.to_dict() == r.to_dict() and got.fingerprint == r.fingerprint


async def test_an_ack_removes_the_request_and_a_release_puts_it_back_in_its_place(stores: Stores) -> None:
    b = await stores.open()
    await b.commit(seed("/a", "/b", "/c", "/d"))
    leases = await b.pop(3)
    assert paths(leases) == ["/a", "/b", "/c"]
    await b.commit([Outcome(leases[1].id, stats={"pages": 1})])  # /b acked
    assert await b.in_flight() == 2 and await b.queued() == 1
    await b.release([leases[2].id, leases[0].id, "no-such-lease"])
    assert await b.in_flight() == 0 and await b.queued() == 3
    # released requests go back where they were: ahead of /d, which arrived after them
    assert paths(await b.pop(10)) == ["/a", "/c", "/d"]


async def test_releasing_or_acking_twice_changes_nothing(stores: Stores) -> None:
    b = await stores.open()
    await b.commit(seed("/a", "/b"))
    a, bb = await b.pop(2)
    await b.commit([Outcome(a.id)])
    await b.commit([Outcome(a.id)])
    await b.release([bb.id])
    await b.release([bb.id, a.id])
    assert await b.queued() == 1 and await b.in_flight() == 0
    assert paths(await b.pop(5)) == ["/b"]


async def test_an_ack_naming_a_lease_nobody_holds_changes_nothing(stores: Stores) -> None:
    """Issue 20 item 5: a stale ack (a lease id from before a Redis rollback, or never handed out) must
    never delete a request that is queued under that id now."""
    b = await stores.open()
    await b.commit(seed("/a", "/b", "/c"))
    (a,) = await b.pop(1)
    # ids the stores use for the still-queued /b and /c (SQLite row ids, Redis sequence numbers), and junk
    await b.commit([Outcome(lid) for lid in ("2", "3", "000000000002", "000000000003", "999999")])
    assert await b.queued() == 2 and await b.in_flight() == 1
    await b.commit([Outcome(a.id)])
    assert paths(await b.pop(5)) == ["/b", "/c"]


async def test_a_redis_ack_from_before_a_rollback_leaves_the_request_now_under_its_id(redis_stores: Stores) -> None:
    """Redis restored from an older snapshot hands a lease's id to another request: the old ack is a no-op."""
    b = await redis_stores.open()
    await b.commit(seed("/old"))
    (old,) = await b.pop(1)
    assert isinstance(b, RedisBackend)
    # the rollback, as Redis sees it afterwards: that lease never happened, and the id names a new request
    await b.r.delete(b.k.leases, b.k.owners, b.k.lease_hosts, b.k.frontier, b.k.ready, b.k.requests)
    await b.r.hset(b.k.requests, old.id, req("/new").to_wire())
    await b.r.zadd(b.k.host_queue("127.0.0.1"), {old.id: 0})
    await b.r.hset(b.k.frontier, "queued", 1)
    await b.r.zadd(b.k.ready, {"127.0.0.1": 0})
    await b.commit([Outcome(old.id, stats={"pages": 1})])  # the stale ack
    assert paths(await b.pop(5)) == ["/new"]
    assert int(await b.r.hget(b.k.stats, "stale_acks") or 0) == 1


async def test_the_round_is_complete_only_when_seeded_and_drained(stores: Stores) -> None:
    b = await stores.open()
    assert await b.round_info() == RoundInfo(0, False, 0)
    assert not await b.is_complete()  # never seeded
    assert await b.begin_round() == 1
    assert await b.round_info() == RoundInfo(1, True, 0)
    await b.commit(seed("/start", dont_filter=True))
    assert not await b.is_complete()  # seeding under way
    await b.end_seeding(1)
    assert await b.round_info() == RoundInfo(1, False, 1)
    assert not await b.is_complete()  # queued
    (lease,) = await b.pop(1)
    assert not await b.is_complete()  # in flight
    await b.commit([Outcome(lease.id, requests=[req("/next")])])
    assert not await b.is_complete()
    (lease,) = await b.pop(1)
    await b.commit([Outcome(lease.id)])
    assert await b.is_complete()
    assert await b.begin_round() == 2
    assert await b.round_info() == RoundInfo(2, True, 1)
    assert not await b.is_complete()  # a new round is seeding
    await b.end_seeding(2)
    assert await b.round_info() == RoundInfo(2, False, 2)
    assert await b.is_complete()  # seeded nothing new: complete at once


# -- surviving a process: reopen and reclaim ----------------------------------------------------------


async def test_a_reopened_store_keeps_queue_fingerprints_items_and_round(persistent_stores: Stores) -> None:
    kit = persistent_stores
    b = await kit.open(worker_id="w1")
    assert await b.begin_round() == 1
    await b.commit(seed("/a", "/b", "/c"))
    await b.commit([Outcome(None, items=[item(url="u1")])])
    await kit.close(b)

    again = await kit.open(worker_id="w1")
    assert await again.round_info() == RoundInfo(1, True, 0)  # seeding was never finished
    assert await again.queued() == 3
    res = await again.commit([Outcome(None, requests=[req("/a"), req("/d")], items=[item(url="u1")])])
    assert (res.enqueued, res.filtered, res.items_stored, res.items_duplicate) == (1, 1, 0, 1)
    assert paths(await again.pop(10)) == ["/a", "/b", "/c", "/d"]


async def test_the_same_worker_reopening_reclaims_its_leases_at_once(persistent_stores: Stores) -> None:
    kit = persistent_stores
    b = await kit.open(worker_id="w1")
    await b.commit(seed("/a", "/b", "/c"))
    assert paths(await b.pop(2)) == ["/a", "/b"]
    # the process dies holding two leases: no release, no ack
    await kit.close(b)

    again = await kit.open(worker_id="w1")
    assert again.counters()["reclaimed"] == 2
    assert await again.in_flight() == 0 and await again.queued() == 3
    assert paths(await again.pop(10)) == ["/a", "/b", "/c"]


async def test_another_redis_worker_takes_over_leases_only_after_they_expire(redis_stores: Stores) -> None:
    # (local stores have no other workers: their leases end with the process, as the test above shows)
    kit = redis_stores
    dead = await kit.open(worker_id="w1", lease_seconds=60)
    await dead.commit(seed("/a", "/b"))
    held = await dead.pop(2)
    other = await kit.open(worker_id="w2", lease_seconds=60)
    assert other.counters()["reclaimed"] == 0 and await other.in_flight() == 2  # not w2's to reclaim
    kit.clock.advance(59)
    assert await other.pop(5) == []  # still w1's
    kit.clock.advance(2)
    assert paths(await other.pop(5)) == ["/a", "/b"]
    assert other.counters()["reaped"] == 2
    # w1 comes back late: releasing leases that are w2's now changes nothing
    await dead.release([lease.id for lease in held])
    assert await other.in_flight() == 2 and await other.queued() == 0


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x04\x95pickle",  # not JSON: what a pickle starts with
        b'{"v": 99, "url": "http://127.0.0.1/x"}',  # a format version nobody wrote
        b'{"v": 1, "url": "file:///etc/passwd"}',  # not http(s)
        b'{"v": 1, "url": "http://127.0.0.1/x", "headers": {"a": 1}}',  # wrong type inside
    ],
    ids=["not-json", "unknown-version", "not-http", "bad-headers"],
)
async def test_a_corrupt_queue_entry_is_rejected_counted_and_never_returned(
    persistent_stores: Stores, payload: bytes
) -> None:
    # (memory never decodes: its queue holds Request objects)
    b = await persistent_stores.open()
    await b.commit(seed("/good"))
    persistent_stores.inject_raw(payload)  # ahead of everything
    assert paths(await b.pop(10)) == ["/good"]
    assert b.counters()["rejected"] == 1
    assert await b.queued() == 0 and await b.in_flight() == 1
    assert await b.pop(10) == []  # dropped, not put back


async def test_a_store_can_be_driven_concurrently_by_one_process(stores: Stores) -> None:
    """The scheduler overlaps pop, commit and the probes; each call is applied whole."""
    b = await stores.open()
    await b.commit(seed(*[f"/s{i}" for i in range(50)]))

    async def worker(n: int) -> int:
        done = 0
        while leases := await b.pop(3):
            await b.commit(
                [
                    # each seed leads to one new page, which leads nowhere
                    Outcome(lease.id, requests=[req(f"/w{n}-{lease.id}")] if "/s" in lease.request.url else [])
                    for lease in leases
                ]
            )
            done += len(leases)
            await asyncio.sleep(0)
        return done

    total = sum(await asyncio.gather(*(worker(n) for n in range(4))))
    assert total == 100  # 50 seeds + one new request from each
    assert await b.queued() == 0 and await b.in_flight() == 0


async def test_the_status_reader_agrees_with_the_redis_store_on_rounds(redis_stores: Stores) -> None:
    """``kubecrawl status`` and the operator read the meta keys themselves: they must say what the store says."""
    from kubecrawl.status import format_status, read_status

    kit = redis_stores
    b = await kit.open()
    server = kit.server
    assert server is not None

    async def agree() -> str:
        st = read_status(server.client(), kit.crawl)
        info = await b.round_info()
        assert (st.round, st.seeding, st.seeded_round) == (info.round, info.seeding, info.seeded_round)
        assert st.complete == await b.is_complete()
        return format_status(st)

    await b.begin_round()
    await b.commit(seed("/s", dont_filter=True))
    await b.end_seeding(1)
    assert "round 1, running" in await agree()
    (lease,) = await b.pop(1)
    await b.commit([Outcome(lease.id)])
    assert "round 1, complete" in await agree()
    await b.begin_round()
    assert "round 2, seeding" in await agree()
    await b.end_seeding(2)
    assert "round 2, complete" in await agree()


# -- robots.txt shared by the crawl's workers (docs/contracts.md, "robots.txt") ------------------------

ORIGIN = "http://127.0.0.1:9"
ROBOTS = "User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n"


async def test_robots_entries_round_trip_age_out_and_survive_a_reopen(stores: Stores) -> None:
    b = await stores.open()
    assert await b.robots_get(ORIGIN) is None
    await b.robots_put(ORIGIN, "ok", ROBOTS, ttl=3600)
    got = await b.robots_get(ORIGIN)
    if not stores.persistent:
        # memory keeps nothing: one process, and its downloader's own copy is the only one it needs
        assert b.shares_robots is False and got is None
        assert await b.robots_claim(ORIGIN, 10) is True
        return
    assert b.shares_robots is True
    assert got is not None
    assert (got.kind, got.body, got.why) == ("ok", ROBOTS, "")
    assert got.fetched_at == stores.clock.now and got.expires == stores.clock.now + 3600
    await b.robots_put("https://other.example", "unavailable", "", ttl=1, why="HTTP 503")
    other = await b.robots_get("https://other.example")
    assert other is not None and (other.kind, other.why) == ("unavailable", "HTTP 503")
    assert await b.robots_get("http://127.0.0.1:10") is None  # origins are apart, port included

    # a restarted process (a resumed --state-dir crawl, another slave) reads the same entry
    await stores.close(b)
    again = await stores.open()
    kept = await again.robots_get(ORIGIN)
    assert kept is not None and kept.body == ROBOTS
    stores.clock.advance(2)
    assert await again.robots_get("https://other.example") is None  # the unavailable one aged out
    stores.clock.advance(3600)
    assert await again.robots_get(ORIGIN) is None  # robots_refresh has passed: fetched again
    await again.robots_put(ORIGIN, "allow", "", ttl=60)  # a refetch replaces it
    fresh = await again.robots_get(ORIGIN)
    assert fresh is not None and (fresh.kind, fresh.body) == ("allow", "")


async def test_one_redis_worker_at_a_time_claims_an_origin_and_its_put_ends_the_claim(redis_stores: Stores) -> None:
    a = await redis_stores.open(worker_id="w1")
    b = await redis_stores.open(worker_id="w2")
    assert await a.robots_claim(ORIGIN, 30) is True
    assert await b.robots_claim(ORIGIN, 30) is False  # w1 is fetching it: w2 polls robots_get
    assert await b.robots_claim("http://127.0.0.1:10", 30) is True  # another origin
    await a.robots_put(ORIGIN, "ok", ROBOTS, ttl=3600)
    got = await b.robots_get(ORIGIN)
    assert got is not None and got.body == ROBOTS
    assert await b.robots_claim(ORIGIN, 30) is True  # the put ended w1's claim
    await a.robots_put(ORIGIN, "ok", ROBOTS, ttl=3600)  # w1 no longer holds it: w2's claim stays
    assert await a.robots_claim(ORIGIN, 30) is False


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x04\x95pickle",  # not JSON
        b'["ok", "User-agent: *"]',  # JSON, not an object
        b'{"kind": "maybe", "body": "", "at": 1, "exp": 9e99}',  # a kind nobody writes
        b'{"kind": "ok", "body": 12, "at": 1, "exp": 9e99}',  # body not text
        b'{"kind": "ok", "body": "", "at": "now", "exp": 9e99}',  # times not numbers
        b'{"kind": "ok", "body": "' + b"D" * (4 << 20) + b'", "at": 1, "exp": 9e99}',  # 4 MiB
    ],
    ids=["not-json", "not-object", "unknown-kind", "body-not-text", "at-not-number", "huge"],
)
async def test_a_hostile_redis_robots_entry_is_refused_as_a_wire_format_error(redis_stores: Stores, raw: bytes) -> None:
    from kubecrawl.backends.redis import Keys
    from kubecrawl.errors import WireFormatError

    b = await redis_stores.open()
    assert redis_stores.server is not None
    redis_stores.server.client().hset(Keys(redis_stores.crawl).robots, ORIGIN, raw)
    with pytest.raises(WireFormatError):
        await b.robots_get(ORIGIN)
    await b.robots_put(ORIGIN, "ok", ROBOTS, ttl=60)  # the worker that fetched it overwrites it
    got = await b.robots_get(ORIGIN)
    assert got is not None and got.body == ROBOTS
