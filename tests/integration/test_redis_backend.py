"""The Redis store against a real redis-server: leases, reaping, reclaim, dedup variants, hostile entries."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
import redis.asyncio as aioredis

from kubecrawl.backends.base import ItemRecord, Outcome
from kubecrawl.backends.redis import Keys, RedisBackend
from kubecrawl.request import Request
from kubecrawl.status import export_items, format_status, read_status
from tests.helpers.redis_server import enqueue_raw

if TYPE_CHECKING:
    from tests.integration.conftest import RedisServer


def backend(server: RedisServer, crawl: str = "t", **kw: object) -> RedisBackend:
    client = aioredis.Redis.from_url(server.url)
    return RedisBackend(client, crawl, **kw)  # type: ignore[arg-type]


def reqs(*paths: str, **kw: object) -> list[Request]:
    return [Request(f"http://127.0.0.1:1{p}", **kw) for p in paths]  # type: ignore[arg-type]


async def test_popped_requests_come_out_by_priority_then_arrival(redis_server: RedisServer) -> None:
    b = backend(redis_server)
    await b.open()
    res = await b.commit([Outcome(None, requests=[*reqs("/a", "/b"), *reqs("/hi", priority=5), *reqs("/c")])])
    assert res.enqueued == 4
    leases = await b.pop(10)
    assert [lease.request.url.rsplit("/", 1)[1] for lease in leases] == ["hi", "a", "b", "c"]
    assert await b.queued() == 0 and await b.in_flight() == 4
    await b.close()


async def test_commit_dedups_requests_acks_leases_and_stores_items_once(redis_server: RedisServer) -> None:
    b = backend(redis_server)
    await b.open()
    await b.commit([Outcome(None, requests=reqs("/a", "/b"))])
    leases = await b.pop(2)
    item = ItemRecord.build({"url": "u1", "title": "t"}, ["url", "title"])
    res = await b.commit(
        [
            Outcome(leases[0].id, requests=reqs("/a", "/c", "/c"), items=[item], stats={"pages": 1}),
            Outcome(leases[1].id, requests=reqs("/d", "/b"), items=[item], stats={"pages": 1}),
        ]
    )
    assert (res.enqueued, res.filtered, res.items_stored, res.items_duplicate) == (2, 3, 1, 1)
    assert await b.in_flight() == 0 and await b.queued() == 2
    st = read_status(redis_server.client(), "t")
    assert st.items == 1 and st.pages == 2 and st.seen == 4 and st.in_flight == 0 and st.queued == 2
    assert "2 queued" in format_status(st)
    await b.close()


async def test_retried_commit_is_applied_once(redis_server: RedisServer) -> None:
    b = backend(redis_server)
    await b.open()
    oc = [Outcome(None, requests=reqs("/x", dont_filter=True), items=[ItemRecord.build({"n": 1}, ["n"])])]
    first = await b.commit(oc)
    b._commit_seq -= 1  # the same commit again, as after a reply lost with the connection
    again = await b.commit(oc)
    assert (first.enqueued, first.items_stored) == (1, 1)
    assert again == first
    assert await b.queued() == 1
    assert read_status(redis_server.client(), "t").items == 1
    await b.close()


async def test_expired_lease_goes_back_to_the_queue(redis_server: RedisServer) -> None:
    b1 = backend(redis_server, lease_seconds=0.05, worker_id="w1")
    b2 = backend(redis_server, worker_id="w2")
    await b1.open()
    await b2.open()
    await b1.commit([Outcome(None, requests=reqs("/a"))])
    assert len(await b1.pop(5)) == 1
    deadline = asyncio.get_running_loop().time() + 10
    got: list = []
    while not got:
        assert asyncio.get_running_loop().time() < deadline, "expired lease never reaped"
        got = await b2.pop(5)
        await asyncio.sleep(0.02)
    assert got[0].request.url.endswith("/a")
    assert b2.reaped == 1
    await b1.close()
    await b2.close()


async def test_restarted_worker_hands_its_own_leases_back_at_once(redis_server: RedisServer) -> None:
    b = backend(redis_server, worker_id="slave-0")
    await b.open()
    await b.commit([Outcome(None, requests=reqs("/a", "/b", "/c"))])
    assert len(await b.pop(2)) == 2
    other = backend(redis_server, worker_id="slave-1")
    await other.open()
    assert await other.in_flight() == 2  # someone else's start does not touch them
    again = backend(redis_server, worker_id="slave-0")  # the same worker, restarted
    await again.open()
    assert await again.in_flight() == 0 and await again.queued() == 3
    for x in (b, other, again):
        await x.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x04\x95pickle",  # not JSON (a pickle would start like this)
        b'{"v": 99, "url": "http://127.0.0.1/x"}',  # unknown format version
        b'{"v": 1, "url": ["http://127.0.0.1/x"]}',  # wrong type
        b'{"v": 1, "url": "file:///etc/passwd"}',  # not http(s)
        b'{"v": 1, "url": "http://127.0.0.1/x", "meta": "' + b"A" * (2 << 20) + b'"}',  # huge
    ],
    ids=["not-json", "wrong-version", "wrong-type", "not-http", "huge"],
)
async def test_hostile_queue_entry_is_rejected_and_counted(redis_server: RedisServer, payload: bytes) -> None:
    b = backend(redis_server)
    await b.open()
    await b.commit([Outcome(None, requests=reqs("/good"))])
    k = Keys("t")
    r = redis_server.client()
    enqueue_raw(r, "t", "hostile", payload, 100, slot="127.0.0.1")  # ahead of everything
    leases = await b.pop(10)
    assert [lease.request.url for lease in leases] == ["http://127.0.0.1:1/good"]
    assert b.rejected == 1
    assert int(r.hget(k.stats, "rejected")) == 1
    assert not r.hexists(k.requests, "hostile") and r.zscore(k.leases, "hostile") is None
    await b.close()


async def test_fingerprint_ttl_lets_a_request_in_again_once_old(redis_server: RedisServer) -> None:
    b = backend(redis_server, fingerprint_ttl=0.2)
    await b.open()
    assert (await b.commit([Outcome(None, requests=reqs("/a"))])).enqueued == 1
    assert (await b.commit([Outcome(None, requests=reqs("/a"))])).filtered == 1
    deadline = asyncio.get_running_loop().time() + 10
    while (await b.commit([Outcome(None, requests=reqs("/a"))])).enqueued == 0:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await b.close()


@pytest.mark.parametrize("dedup", ["set", "bloom"])
async def test_dedup_variants_filter_exactly_what_was_seen(redis_server: RedisServer, dedup: str) -> None:
    b = backend(redis_server, crawl=f"d-{dedup}", dedup=dedup, capacity=100_000, error_rate=0.001)
    await b.open()
    first = [f"/p{i}" for i in range(2000)]
    res = await b.commit([Outcome(None, requests=reqs(*first))])
    assert res.enqueued == 2000
    res = await b.commit([Outcome(None, requests=reqs(*first[:1000], *[f"/q{i}" for i in range(1000)]))])
    assert res.filtered >= 1000 and res.enqueued <= 1000
    assert res.enqueued >= 990  # a Bloom filter at 0.1% may drop a few new ones, never more
    if dedup == "set":
        assert res.enqueued == 1000
        enc = redis_server.client().object("encoding", Keys(f"d-{dedup}").seen_bucket(0))
        assert enc in (None, b"intset")
    await b.close()


async def test_export_writes_every_item_as_json_lines(redis_server: RedisServer, tmp_path: Path) -> None:
    b = backend(redis_server)
    await b.open()
    recs = [ItemRecord.build({"url": f"u{i}", "n": i}, ["url"]) for i in range(2500)]
    await b.commit([Outcome(None, items=recs)])
    out = tmp_path / "items.jsonl"
    n = export_items(redis_server.client(), "t", out)
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert n == 2500 and [x["n"] for x in lines] == list(range(2500))
    await b.close()


async def test_bloom_bitmap_in_redis_is_bit_for_bit_the_filter_measured_in_the_unit_tests(
    redis_server: RedisServer,
) -> None:
    from kubecrawl.backends.bloom import BloomParams, LocalBloom

    b = backend(redis_server, crawl="bits", dedup="bloom", capacity=20_000, error_rate=0.01)
    await b.open()
    requests = reqs(*[f"/b{i}" for i in range(5000)])
    await b.commit([Outcome(None, requests=requests)])
    local = LocalBloom(BloomParams.for_capacity(20_000, 0.01))
    for req in requests:
        local.add(req.fingerprint)
    stored = redis_server.client().get(Keys("bits").bloom_shard(0))
    expected = local.shard_bytes(0)
    assert stored == expected  # created whole at open, same bits as the local filter
    await b.close()


async def test_a_restarted_worker_with_the_same_id_has_its_first_commit_applied(redis_server: RedisServer) -> None:
    """Issue 20 item 5: the replay guard (retried commit applied once) keyed on worker id + seq made a
    restarted worker's first commit (seq 1 again) look like a replay of its predecessor's and drop it."""
    first = backend(redis_server, worker_id="slave-0")
    await first.open()
    await first.commit([Outcome(None, requests=reqs("/round-1"))])
    await first.close()
    again = backend(redis_server, worker_id="slave-0")
    await again.open()
    res = await again.commit([Outcome(None, requests=reqs("/round-2"))])
    assert res.enqueued == 1
    assert sorted(lease.request.url for lease in await again.pop(10)) == [
        "http://127.0.0.1:1/round-1",
        "http://127.0.0.1:1/round-2",
    ]
    await again.close()


async def test_status_shows_the_hosts_with_work_and_the_busiest_without_a_scan(redis_server: RedisServer) -> None:
    from kubecrawl.backends.frontier import Politeness

    now = [1_800_000_000.0]  # a stepped clock: the delay is waited out without sleeping
    b = backend(redis_server, "hosts", politeness=Politeness(per_host=1, delay=0.5), worker_cap=4, clock=lambda: now[0])
    await b.open()
    many = [Request(f"http://big.test/{i}") for i in range(30)]
    few = [Request(f"http://small-{j}.test/{i}") for j in range(12) for i in range(j % 3 + 1)]
    await b.commit([Outcome(None, requests=many + few)])
    popped = await b.pop(5)
    client = redis_server.client()
    st = read_status(client, "hosts")
    assert st.hosts == 13 and len(st.busiest_hosts) == 10
    top = st.busiest_hosts[0]
    assert (top.slot, top.queued + top.in_flight) == ("big.test", 30)
    assert [h.queued + h.in_flight for h in st.busiest_hosts[1:5]] == [3, 3, 3, 3]
    text = format_status(st)
    assert "hosts          13 with queued or leased requests, busiest:" in text
    assert "big.test" in text
    # the reads are O(top): the hosts ZSET, never a scan of the slots' queues
    assert await b.r.zcard(b.k.hosts) == 13
    await b.commit([Outcome(lease.id) for lease in popped])
    while True:
        got = await b.pop(50)
        if not got:
            if await b.queued() == 0:
                break
            now[0] += 1.0
            continue
        await b.commit([Outcome(lease.id) for lease in got])
    st = read_status(client, "hosts")
    assert st.hosts == 0 and st.busiest_hosts == [] and st.pages == 0
    assert [f for f in await b.r.hkeys(b.k.frontier) if f.startswith(b"w:")] == []
    await b.close()
