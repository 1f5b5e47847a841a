"""The per-host frontier (docs/contracts.md §6, docs/distributed.md): the same answers on every store.

Download slots are hostnames (or registered domains); a slot gives a request only when it is ready and
has a free concurrency slot. The fake clock steps time, so delays are checked without waiting.
"""

from __future__ import annotations

import time
from typing import Any

from kubecrawl.backends.base import Lease, Outcome
from kubecrawl.backends.frontier import Politeness
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
