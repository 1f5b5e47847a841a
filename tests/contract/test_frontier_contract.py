"""The per-host frontier (docs/contracts.md §6, docs/distributed.md): the same answers on every store.

Download slots are hostnames (or registered domains); a slot gives a request only when it is ready and
has a free concurrency slot. The fake clock steps time, so delays are checked without waiting.
"""

from __future__ import annotations

import time
from typing import Any

from kubecrawl.backends.base import FrontierStatus, Lease, Outcome
from kubecrawl.backends.frontier import STATUS_CACHE_S, Politeness
from kubecrawl.request import Request
from tests.contract.conftest import Stores


def on(host: str, *paths: str, **kw: Any) -> list[Request]:
    return [Request(f"http://{host}{p}", **kw) for p in paths]


def urls(leases: list[Lease]) -> list[str]:
    return [lease.request.url for lease in leases]


def hosts(leases: list[Lease]) -> list[str]:
    return sorted(lease.request.url.split("/")[2] for lease in leases)


def ack(lease: Lease, answered_ago: float | None = 0.0) -> Outcome:
    answered = None if answered_ago is None else time.monotonic() - answered_ago
    return Outcome(lease.id, answered=answered)


async def test_a_slot_gives_no_more_than_concurrency_per_host_until_a_lease_ends(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=1))
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2", "/3") + on("b.test", "/1"))])
    first = await b.pop(10)
    assert hosts(first) == ["a.test", "b.test"]  # one each, however many were asked for
    assert await b.pop(10) == []
    assert b.next_ready is None  # nothing becomes ready by waiting: both slots are busy
    assert await b.queued() == 2 and await b.in_flight() == 2
    a_lease = next(lease for lease in first if "a.test" in lease.request.url)
    await b.commit([ack(a_lease)])
    assert urls(await b.pop(10)) == ["http://a.test/2"]  # the ack freed a.test's slot, and only that


async def test_a_released_lease_frees_its_slot_and_comes_back_first(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=1))
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2"))])
    (held,) = await b.pop(10)
    await b.release([held.id])
    assert urls(await b.pop(10)) == ["http://a.test/1"]


async def test_priorities_order_requests_within_a_slot(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=2))
    await b.commit(
        [Outcome(None, requests=on("a.test", "/low") + on("a.test", "/high", priority=5) + on("a.test", "/mid"))]
    )
    assert urls(await b.pop(10)) == ["http://a.test/high", "http://a.test/low"]


async def test_a_host_with_many_queued_does_not_starve_the_others(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=2))
    big = on("big.test", *[f"/{i}" for i in range(200)])
    await b.commit([Outcome(None, requests=big), Outcome(None, requests=on("small.test", "/1"))])
    got = await b.pop(10)
    assert hosts(got) == ["big.test", "big.test", "small.test"]


async def test_a_delay_spaces_the_pops_of_one_slot_by_half_to_one_and_a_half_times_it(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=10, delay=1.0))
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2", "/3") + on("b.test", "/1"))])
    assert hosts(await b.pop(10)) == ["a.test", "b.test"]  # with a delay: one per slot per pop
    assert await b.pop(10) == []
    assert b.next_ready is not None and 0.5 - 0.002 <= b.next_ready <= 1.5  # the store says when
    assert await b.queued() == 2
    stores.clock.advance(0.49)
    assert await b.pop(10) == []  # never before half the delay
    stores.clock.advance(1.02)
    assert urls(await b.pop(10)) == ["http://a.test/2"]  # and always by 1.5x of it


async def test_the_next_request_waits_the_delay_from_when_the_fetch_was_answered(stores: Stores) -> None:
    """A lease that sat in a worker's buffer: the gap counts from its fetch's answer, not from its pop."""
    b = await stores.open(politeness=Politeness(per_host=1, delay=1.0))
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2"))])
    (lease,) = await b.pop(10)
    stores.clock.advance(5)  # long after the pop the fetch starts, and is answered now
    await b.commit([ack(lease, answered_ago=0.0)])
    assert await b.pop(10) == []
    assert b.next_ready is not None and b.next_ready >= 0.5 - 0.05
    stores.clock.advance(1.51)
    assert urls(await b.pop(10)) == ["http://a.test/2"]


async def test_an_ack_without_a_fetch_frees_the_slot_without_moving_its_time(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=1, delay=1.0))
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2"))])
    (lease,) = await b.pop(10)
    stores.clock.advance(1.5)
    await b.commit([ack(lease, answered_ago=None)])  # e.g. refused by robots.txt: nothing was sent
    assert urls(await b.pop(10)) == ["http://a.test/2"]


async def test_registered_domain_slots_put_subdomains_together(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=1, slot_key="domain"))
    reqs = on("a.example.co.uk", "/1") + on("b.example.co.uk", "/1") + on("other.co.uk", "/1")
    await b.commit([Outcome(None, requests=reqs)])
    got = await b.pop(10)
    assert len(got) == 2 and "http://other.co.uk/1" in urls(got)  # example.co.uk gave one, not two


async def test_a_reopened_store_frees_the_slots_of_the_leases_it_reclaims(persistent_stores: Stores) -> None:
    kit = persistent_stores
    b = await kit.open(worker_id="w1", politeness=Politeness(per_host=1))
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2"))])
    assert len(await b.pop(10)) == 1
    await kit.close(b)  # killed holding a.test's only slot
    again = await kit.open(worker_id="w1", politeness=Politeness(per_host=1))
    assert urls(await again.pop(10)) == ["http://a.test/1"]


async def test_an_expired_redis_lease_frees_its_slot_for_another_worker(redis_stores: Stores) -> None:
    kit = redis_stores
    polite = Politeness(per_host=1)
    dead = await kit.open(worker_id="w1", lease_seconds=60, politeness=polite)
    await dead.commit([Outcome(None, requests=on("a.test", "/1", "/2"))])
    assert len(await dead.pop(10)) == 1
    other = await kit.open(worker_id="w2", lease_seconds=60, politeness=polite)
    assert await other.pop(10) == []  # a.test's slot is w1's
    kit.clock.advance(61)
    assert urls(await other.pop(10)) == ["http://a.test/1"]  # reaped, slot and all
    assert await other.pop(10) == []  # and now w2 holds the one slot


async def test_two_redis_workers_share_one_slot_count_and_one_delay(redis_stores: Stores) -> None:
    kit = redis_stores
    polite = Politeness(per_host=2, delay=1.0)
    w1 = await kit.open(worker_id="w1", politeness=polite)
    w2 = await kit.open(worker_id="w2", politeness=polite)
    await w1.commit([Outcome(None, requests=on("a.test", *[f"/{i}" for i in range(5)]))])
    assert len(await w1.pop(10)) == 1
    assert await w2.pop(10) == []  # the delay is the slot's, not the worker's
    kit.clock.advance(1.5)
    assert len(await w2.pop(10)) == 1
    kit.clock.advance(1.5)
    assert await w1.pop(10) == [] and await w2.pop(10) == []  # two in flight: the slot is full
    assert w1.next_ready is None


async def test_requests_queued_by_a_worker_from_before_the_frontier_are_not_left_behind(
    redis_stores: Stores,
) -> None:
    """An older worker's layout: one ZSET ``queue`` for every host. A new worker moves it at open."""
    from kubecrawl.backends.redis import Keys

    assert redis_stores.server is not None
    k, r = Keys(redis_stores.crawl), redis_stores.server.client()
    for i, (url, prio) in enumerate([("http://a.test/1", 0), ("http://b.test/1", 0), ("http://a.test/2", 5)]):
        rid = f"{i + 1:012d}"
        r.hset(k.requests, rid, Request(url, priority=prio).to_wire())
        r.zadd(k.legacy_queue, {rid: -prio})
    b = await redis_stores.open(politeness=Politeness(per_host=1))
    assert r.zcard(k.legacy_queue) == 0 and await b.queued() == 3
    assert sorted(urls(await b.pop(10))) == ["http://a.test/2", "http://b.test/1"]  # priority within a.test


async def test_a_local_store_frees_a_place_when_the_fetch_is_done_and_the_ack_does_not_free_it_twice(
    stores: Stores,
) -> None:
    b = await stores.open(politeness=Politeness(per_host=1))
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2", "/3"))])
    (first,) = await b.pop(10)
    b.fetch_done(Outcome(first.id, answered=time.monotonic()))
    if stores.kind == "redis":
        assert await b.pop(10) == []  # a shared store frees the place at the ack (no extra round trip)
        await b.commit([ack(first)])
        (second,) = await b.pop(10)
    else:
        (second,) = await b.pop(10)  # in this process the place came back at once
        await b.commit([ack(first)])
    assert second.request.url == "http://a.test/2"
    assert await b.pop(10) == []  # /2 holds the one place: the ack of /1 freed nothing more
    await b.release([second.id])
    assert urls(await b.pop(10)) == ["http://a.test/2"]


async def test_a_robots_crawl_delay_is_a_floor_under_the_slot_delay_for_every_worker(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=5))  # no download_delay of its own
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2", "/3") + on("b.test", "/1", "/2"))])
    got = await b.pop(10)
    assert len(got) == 5  # nothing known yet: no delay
    a1 = next(lease for lease in got if lease.request.url == "http://a.test/1")
    await b.commit([Outcome(a1.id, answered=time.monotonic(), crawl_delay=2.0)])  # robots.txt said 2 s
    await b.commit([Outcome(lease.id, answered=time.monotonic()) for lease in got if lease is not a1])
    await b.commit([Outcome(None, requests=on("a.test", "/4", "/5") + on("b.test", "/3"))])
    assert urls(await b.pop(10)) == ["http://b.test/3"]  # a.test waits; b.test has no Crawl-delay
    assert b.next_ready is not None and b.next_ready >= 2.0 - 0.05
    stores.clock.advance(2.01)
    (a4,) = await b.pop(10)
    assert a4.request.url == "http://a.test/4"
    await b.commit([Outcome(a4.id, answered=time.monotonic())])  # the next answer says nothing: kept
    assert await b.pop(10) == []
    stores.clock.advance(2.01)
    assert urls(await b.pop(10)) == ["http://a.test/5"]


async def test_a_reopened_store_keeps_each_slots_next_allowed_time(persistent_stores: Stores) -> None:
    """A restarted ``--state-dir`` run (or Redis worker) must not give a slot its next request early."""
    pol = Politeness(per_host=1, delay=10.0)
    b = await persistent_stores.open(politeness=pol)
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2"))])
    (first,) = await b.pop(10)
    await b.commit([ack(first)])
    await persistent_stores.close(b)
    again = await persistent_stores.open(politeness=pol)
    assert await again.pop(10) == []
    assert again.next_ready is not None and 5.0 - 0.5 <= again.next_ready <= 15.0
    persistent_stores.clock.advance(15.0)
    assert urls(await again.pop(10)) == ["http://a.test/2"]


async def _frontier_books(b: Any) -> tuple[dict[str, int], dict[str, int]]:
    """(the per-worker 'w:' fields of the frontier hash, the hosts ZSET) of a Redis store."""
    raw = await b.r.hgetall(b.k.frontier)
    held = {k.decode(): int(v) for k, v in raw.items() if k.startswith(b"w:")}
    pending = {k.decode(): int(v) for k, v in await b.r.zrange(b.k.hosts, 0, -1, withscores=True)}
    return held, pending


async def test_a_redis_worker_holds_no_more_of_a_slot_than_its_cap_and_the_other_gets_the_rest(
    redis_stores: Stores,
) -> None:
    kit = redis_stores
    polite = Politeness(per_host=8)
    w1 = await kit.open(worker_id="w1", politeness=polite, worker_cap=4)
    w2 = await kit.open(worker_id="w2", politeness=polite, worker_cap=4)
    await w1.commit([Outcome(None, requests=on("a.test", *[f"/{i}" for i in range(20)]))])
    mine = await w1.pop(12)  # a buffer of 12 asked for: 4, the worker's own concurrency
    assert len(mine) == 4
    assert await w1.pop(12) == []
    assert w1.next_ready is None  # the slot is ready, but not for w1: no busy polling
    theirs = await w2.pop(12)
    assert len(theirs) == 4  # the other 4 places of the slot
    assert await w2.pop(12) == []
    held, pending = await _frontier_books(w1)
    assert held == {"w:w1|a.test": 4, "w:w2|a.test": 4}
    assert pending == {"a.test": 20}  # 12 queued + 8 leased
    await w1.commit([ack(mine[0])])
    assert len(await w1.pop(12)) == 1  # its ack gave w1 back one place
    await w2.release([lease.id for lease in theirs])
    held, pending = await _frontier_books(w1)
    assert held == {"w:w1|a.test": 4} and pending == {"a.test": 19}
    # a lease that expires is reaped by another worker: the expired holder's count goes with it
    kit.clock.advance(400)
    got = await w2.pop(12)
    assert len(got) == 4
    held, _ = await _frontier_books(w1)
    assert held == {"w:w2|a.test": 4}
    await w2.commit([ack(lease) for lease in got])
    done = urls([mine[0], *got])
    while batch := await w2.pop(12):
        assert len(batch) <= 4
        done += urls(batch)
        await w2.commit([ack(lease) for lease in batch])
    # every request acked once: the 4 w1 held when they expired were fetched by w2
    assert sorted(done) == sorted(f"http://a.test/{i}" for i in range(20))
    held, pending = await _frontier_books(w1)
    assert held == {} and pending == {}  # no field left behind once nothing is leased or queued
    assert await w1.queued() == 0 and await w1.in_flight() == 0


async def test_a_capped_slot_does_not_hide_the_ready_slots_behind_it(redis_stores: Stores) -> None:
    kit = redis_stores
    w1 = await kit.open(worker_id="w1", politeness=Politeness(per_host=8), worker_cap=1)
    await w1.commit([Outcome(None, requests=on("a.test", "/1", "/2", "/3"))])
    assert hosts(await w1.pop(5)) == ["a.test"]
    await w1.commit([Outcome(None, requests=on("b.test", "/1") + on("c.test", "/1"))])
    # a.test (first in the ready set) is at w1's cap: the pop reads past it
    assert hosts(await w1.pop(2)) == ["b.test", "c.test"]
    held, pending = await _frontier_books(w1)
    assert held == {"w:w1|a.test": 1, "w:w1|b.test": 1, "w:w1|c.test": 1}
    assert pending == {"a.test": 3, "b.test": 1, "c.test": 1}


async def test_the_frontier_status_counts_slots_with_work_and_names_the_busiest(stores: Stores) -> None:
    b = await stores.open(politeness=Politeness(per_host=2, delay=1.0))
    assert await b.frontier_status() == FrontierStatus(0, [])
    await b.commit(
        [Outcome(None, requests=on("a.test", "/1", "/2", "/3", "/4") + on("b.test", "/1", "/2") + on("c.test", "/1"))]
    )
    popped = await b.pop(10)  # one of each slot (a delay): a 3 + 1, b 1 + 1, c 0 + 1
    st = await b.frontier_status(top=2)
    assert st is not None and st.hosts == 3
    assert [(h.slot, h.queued, h.in_flight) for h in st.busiest] == [("a.test", 3, 1), ("b.test", 1, 1)]
    for h in st.busiest:
        assert h.delay is not None and 0.5 <= h.delay <= 1.5  # the delay chosen at its pop
        assert 0 < h.next_in <= 1.5
        assert h.crawl_delay is None
    by_host = {lease.request.url.split("/")[2]: lease for lease in popped}
    await b.commit([Outcome(by_host["c.test"].id), Outcome(by_host["b.test"].id, crawl_delay=2.0)])
    stores.clock.advance(STATUS_CACHE_S)  # the in-process stores reuse a status that long
    st = await b.frontier_status(top=10)
    assert st is not None and st.hosts == 2  # c.test has nothing queued or leased any more
    assert [(h.slot, h.queued, h.in_flight) for h in st.busiest] == [("a.test", 3, 1), ("b.test", 1, 0)]
    assert st.busiest[1].crawl_delay == 2.0 and st.busiest[1].delay == 2.0  # the floor, for every worker


async def _check_books(b: Any) -> None:
    """The per-worker counts and the hosts ZSET agree with the leases and queues they summarise."""
    owners = {k.decode(): v.decode() for k, v in (await b.r.hgetall(b.k.owners)).items()}
    lhost = {k.decode(): v.decode() for k, v in (await b.r.hgetall(b.k.lease_hosts)).items()}
    want_held: dict[str, int] = {}
    busy: dict[str, int] = {}
    for rid, who in owners.items():
        want_held[f"w:{who}|{lhost[rid]}"] = want_held.get(f"w:{who}|{lhost[rid]}", 0) + 1
        busy[lhost[rid]] = busy.get(lhost[rid], 0) + 1
    held, pending = await _frontier_books(b)
    assert held == want_held
    want_pending = {}
    for slot in {
        *busy,
        *[k.decode()[len(b.k.host_queue_prefix) :] async for k in b.r.scan_iter(b.k.host_queue_prefix + "*")],
    }:
        n = await b.r.zcard(b.k.host_queue(slot)) + busy.get(slot, 0)
        if n:
            want_pending[slot] = n
    assert pending == want_pending


async def test_random_pops_acks_releases_and_expiries_keep_the_books_exact(redis_stores: Stores) -> None:
    import random

    kit = redis_stores
    rng = random.Random(17)
    polite = Politeness(per_host=3)
    workers = [await kit.open(worker_id=f"w{i}", politeness=polite, worker_cap=2, lease_seconds=30) for i in range(3)]
    held: dict[int, list[tuple[float, Lease]]] = {0: [], 1: [], 2: []}  # (popped at, lease)
    n = 0
    for _ in range(300):
        i = rng.randrange(3)
        w = workers[i]
        op = rng.random()
        now = kit.clock()
        held[i] = [(t, x) for t, x in held[i] if now < t + 30]  # expired ones are reaped by this pop
        if op < 0.3:
            reqs = [Request(f"http://h{rng.randrange(6)}.test/{n + j}") for j in range(rng.randrange(1, 6))]
            n += len(reqs)
            await w.commit([Outcome(None, requests=reqs)])
        elif op < 0.6:
            got = await w.pop(rng.randrange(1, 8))
            mine = [x for _, x in held[i]] + got
            assert all(sum(1 for x in mine if x.request.url.split("/")[2] == h) <= 2 for h in hosts(got))  # the cap
            held[i] += [(now, x) for x in got]
        elif op < 0.8 and held[i]:
            done = rng.sample(held[i], rng.randrange(1, len(held[i]) + 1))
            await w.commit([ack(x) for _, x in done])
            held[i] = [x for x in held[i] if x not in done]
        elif op < 0.9 and held[i]:
            back = held[i][: rng.randrange(1, len(held[i]) + 1)]
            await w.release([x.id for _, x in back])
            held[i] = held[i][len(back) :]
        else:
            kit.clock.advance(rng.choice([1, 5, 31]))  # 31 s: every lease expires, reaped by the next pop
        await _check_books(workers[0])


async def test_a_backoff_holds_its_slot_back_for_every_worker_and_leaves_the_others_alone(stores: Stores) -> None:
    """A 429 (or a 503 with Retry-After) seen by one worker: the slot gives nothing until the wait is over."""
    b = await stores.open(worker_id="w1", politeness=Politeness(per_host=1))  # no delay of its own
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2", "/3") + on("b.test", "/1", "/2"))])
    got = await b.pop(10)
    assert hosts(got) == ["a.test", "b.test"]
    a1 = next(lease for lease in got if "a.test" in lease.request.url)
    await b.backoff("a.test", 2.0)  # while a.test's only place is held: the ack must not undo it
    await b.commit([ack(lease) for lease in got])
    assert urls(await b.pop(10)) == ["http://b.test/2"]  # b.test goes on
    assert b.next_ready is not None and b.next_ready >= 2.0 - 0.05  # the store says when a.test is back
    if stores.kind == "redis":
        other = await stores.open(worker_id="w2", politeness=Politeness(per_host=1))
        assert await other.pop(10) == []  # the backoff is the slot's, not the worker's
    stores.clock.advance(1.9)
    assert await b.pop(10) == []
    stores.clock.advance(0.11)
    (a2,) = await b.pop(10)
    assert a2.request.url == "http://a.test/2" and a1.request.url == "http://a.test/1"
    # a slot waiting in READY (work queued, a free place) is re-scored; a shorter backoff shortens nothing
    await b.commit([ack(a2)])
    await b.backoff("a.test", 5.0)
    await b.backoff("a.test", 1.0)
    stores.clock.advance(4.9)
    assert await b.pop(10) == []
    stores.clock.advance(0.11)
    assert urls(await b.pop(10)) == ["http://a.test/3"]


async def test_a_backoff_outlives_a_restart(persistent_stores: Stores) -> None:
    b = await persistent_stores.open(politeness=Politeness(per_host=1))
    await b.commit([Outcome(None, requests=on("a.test", "/1"))])
    await b.backoff("a.test", 100.0)
    await persistent_stores.close(b)
    again = await persistent_stores.open(politeness=Politeness(per_host=1))
    assert await again.pop(10) == []
    assert again.next_ready is not None and again.next_ready >= 100.0 - 0.5
    persistent_stores.clock.advance(100.01)
    assert urls(await again.pop(10)) == ["http://a.test/1"]


async def test_an_autothrottle_delay_is_a_floor_under_the_slot_delay_and_the_last_one_reported_wins(
    stores: Stores,
) -> None:
    b = await stores.open(politeness=Politeness(per_host=5))  # no download_delay of its own
    await b.commit([Outcome(None, requests=on("a.test", "/1", "/2", "/3") + on("b.test", "/1", "/2"))])
    got = await b.pop(10)
    assert len(got) == 5  # nothing known yet: no delay
    a1 = next(lease for lease in got if lease.request.url == "http://a.test/1")
    await b.commit([Outcome(a1.id, answered=time.monotonic(), throttle_delay=2.0)])  # a worker adapted 2 s
    await b.commit([Outcome(lease.id, answered=time.monotonic()) for lease in got if lease is not a1])
    await b.commit([Outcome(None, requests=on("a.test", "/4", "/5", "/6") + on("b.test", "/3"))])
    assert urls(await b.pop(10)) == ["http://b.test/3"]  # a.test waits; b.test has no AutoThrottle delay
    assert b.next_ready is not None and b.next_ready >= 2.0 - 0.05
    stores.clock.advance(2.01)
    (a4,) = await b.pop(10)  # one at a time now, though five places are free
    assert a4.request.url == "http://a.test/4" and await b.pop(10) == []
    await b.commit([Outcome(a4.id, answered=time.monotonic(), throttle_delay=0.5)])  # the site got faster
    stores.clock.advance(2.01)  # the delay chosen at /4's pop (2 s) still spaces /5 from /4's answer
    (a5,) = await b.pop(10)
    assert a5.request.url == "http://a.test/5"
    await b.commit([Outcome(a5.id, answered=time.monotonic())])
    stores.clock.advance(0.51)  # from now on 0.5 s is the floor
    assert urls(await b.pop(10)) == ["http://a.test/6"]


async def test_meta_download_slot_names_the_slot_whatever_the_host(stores: Stores) -> None:
    """Scrapy's ``meta['download_slot']``: requests naming one slot share its places, across hosts; a
    request of a host that names another slot leaves the host's own slot alone. It survives the wire."""
    b = await stores.open(politeness=Politeness(per_host=1))
    shared = {"meta": {"download_slot": "api-quota"}}
    await b.commit(
        [
            Outcome(None, requests=on("a.test", "/1", **shared) + on("b.test", "/1", **shared)),
            Outcome(None, requests=on("a.test", "/own") + on("c.test", "/1", meta={"download_slot": ""})),
        ]
    )
    first = await b.pop(10)
    # one of the two sharing "api-quota", a.test's own slot, c.test (an empty name is no name)
    assert len(first) == 3 and sorted(urls(first))[1:] == ["http://a.test/own", "http://c.test/1"]
    named = next(lease for lease in first if lease.request.meta.get("download_slot") == "api-quota")
    assert await b.pop(10) == []  # the other api-quota request waits for its slot, not for its host
    await b.commit([ack(named)])
    (second,) = await b.pop(10)
    assert second.request.meta["download_slot"] == "api-quota"
    assert {named.request.url, second.request.url} == {"http://a.test/1", "http://b.test/1"}
    st = await b.frontier_status(top=10)
    assert st is not None and "api-quota" in [h.slot for h in st.busiest]
