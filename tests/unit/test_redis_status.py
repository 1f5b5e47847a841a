"""Pure parts of the distributed status: pages per minute and the human-readable summary."""

from __future__ import annotations

from kubecrawl.backends.redis import Keys, crawl_prefix
from kubecrawl.status import CrawlStatus, format_status, pages_per_minute


def test_every_key_of_a_crawl_shares_one_hash_tag() -> None:
    k = Keys("news.sina")
    keys = [
        k.frontier,
        k.ready,
        k.lease_hosts,
        k.hosts,
        k.host_queue("example.com"),
        k.requests,
        k.leases,
        k.owners,
        k.items,
        k.item_seen,
        k.stats,
        k.workers,
        k.meta,
        k.seen_ttl,
    ]
    keys += [k.seen_bucket(7), k.bloom_shard(0)]
    assert crawl_prefix("news.sina") == "kc:{news.sina}:"
    assert all(key.startswith("kc:{news.sina}:") for key in keys)
    assert len(set(keys)) == len(keys)


def test_pages_per_minute_blends_the_previous_minute_into_the_current_one() -> None:
    minute = 29_000_000
    stats = {"pm:minute": minute, "pm:prev": 600, "pm:cur": 100}
    assert pages_per_minute(stats, minute * 60_000) == 700  # start of the minute: all of the previous one
    assert pages_per_minute(stats, minute * 60_000 + 30_000) == 400  # half-way: half of it
    assert pages_per_minute(stats, (minute + 1) * 60_000 + 15_000) == 75  # next minute: 3/4 of the last
    assert pages_per_minute(stats, (minute + 5) * 60_000) == 0  # nothing for minutes


def test_status_of_a_crawl_that_is_not_in_redis_says_so() -> None:
    assert "nothing in Redis" in format_status(CrawlStatus(crawl="nope"))


def test_status_shows_the_numbers_an_operator_looks_for() -> None:
    st = CrawlStatus(
        crawl="c",
        exists=True,
        seeded_round=2,
        queued=1234,
        in_flight=16,
        seen=5000,
        items=4000,
        pages=4100,
        errors=3,
        live_workers=2,
        workers=["a", "b"],
        round_trips=410,
        round_trips_per_page=0.1,
        stats={"error:timeout": 3},
    )
    text = format_status(st)
    for part in (
        "round 2, running",
        "1,234 queued, 16 in flight",
        "5,000",
        "4,000",
        "timeout=3",
        "2 live: a, b",
        "0.100",
    ):
        assert part in text
