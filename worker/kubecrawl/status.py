"""Reading a distributed crawl's state out of Redis: ``kubecrawl status``, ``kubecrawl export``, the operator.

:func:`read_status` is the one reader of the keys of docs/contracts.md §3 (sync, redis-py); it issues a
single pipelined round trip (a second, of ``top`` slots, when the frontier has work), so polling it from
the operator is cheap: O(log hosts), however many hosts the crawl has.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel

from .backends.base import FRONTIER_TOP, HostLoad
from .backends.redis import Keys, host_loads, queue_frontier_reads, queue_slot_reads
from .errors import ConfigurationError

log = logging.getLogger(__name__)

#: a worker whose last heartbeat is older than this is not counted as live
LIVE_WORKER_MS = 30_000


class CrawlStatus(BaseModel):
    """A snapshot of one crawl, as ``kubecrawl status`` prints it and the operator stores it."""

    crawl: str
    queued: int = 0
    in_flight: int = 0
    seen: int = 0
    items: int = 0
    live_workers: int = 0
    workers: list[str] = []
    #: last round whose seeding finished; ``round`` is the last begun, ``seeding`` whether it still seeds
    seeded_round: int = 0
    round: int = 0
    seeding: bool = False
    complete: bool = False
    pages: int = 0
    errors: int = 0
    retries: int = 0
    bytes: int = 0
    rejected: int = 0
    pages_per_min: float = 0.0
    round_trips: int = 0
    round_trips_per_page: float | None = None
    #: URLs put into the crawl from outside (``kubecrawl push``, ``RequestQueue.put``, a RedisSpider's
    #: list) and queued; those already known, and those refused as invalid
    pushed: int = 0
    pushed_duplicate: int = 0
    pushed_invalid: int = 0
    stats: dict[str, int] = {}
    exists: bool = False
    #: why the store is known to have lost data of this crawl (Redis restarted empty or from an older
    #: snapshot); a crawl that lost data is never ``complete`` (docs/distributed.md)
    lost: str | None = None
    #: download slots with queued or leased requests, and the busiest (most queued + leased first)
    hosts: int = 0
    busiest_hosts: list[HostLoad] = []

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


def redis_client(url: str, password: str | None = None) -> redis.Redis:
    """A sync client for status/export; the password defaults to ``KUBECRAWL_REDIS_PASSWORD`` (never argv)."""
    password = password or os.environ.get("KUBECRAWL_REDIS_PASSWORD") or None
    return redis.Redis.from_url(url, password=password, socket_connect_timeout=5, socket_timeout=30)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def pages_per_minute(stats: dict[str, int], now_ms: int) -> float:
    """Pages in the last minute: the previous whole minute's count blended with the current one."""
    minute = stats.get("pm:minute", 0)
    now_minute, frac = divmod(now_ms, 60_000)
    frac_f = frac / 60_000
    if minute == now_minute:
        return stats.get("pm:prev", 0) * (1 - frac_f) + stats.get("pm:cur", 0)
    if minute == now_minute - 1:
        return stats.get("pm:cur", 0) * (1 - frac_f)
    return 0.0


def read_status(client: redis.Redis, crawl: str, top: int = FRONTIER_TOP) -> CrawlStatus:
    """Queue depth, in flight, seen, items, live workers, counters, the frontier's hosts and completion."""
    k = Keys(crawl)
    p = client.pipeline(transaction=False)
    queue_frontier_reads(p, k, top)
    p.hget(k.frontier, "queued")
    p.zcard(k.leases)
    p.xlen(k.items)
    p.hgetall(k.stats)
    p.hgetall(k.meta)
    p.zrange(k.workers, 0, -1, withscores=True)
    now_t, n_hosts, busiest, queued, leased, items, raw_stats, raw_meta, workers = p.execute()
    queued = _int(queued)
    now_ms = int(now_t[0]) * 1000 + int(now_t[1]) // 1000
    slots = [raw for raw, _ in busiest]
    loads: list[HostLoad] = []
    if slots:
        p = client.pipeline(transaction=False)
        queue_slot_reads(p, k, slots)
        loads = host_loads(slots, p.execute(), now_ms)
    stats = {_s(kk): _int(v) for kk, v in raw_stats.items()}
    meta = {_s(kk): _s(v) for kk, v in raw_meta.items()}
    live = [_s(w) for w, score in workers if now_ms - score <= LIVE_WORKER_MS]
    seeded = _int(meta.get("seeded_round"))
    seeding = meta.get("seeding") == "1"
    pages = stats.get("pages", 0)
    rt = stats.get("round_trips", 0)
    lost = meta.get("lost")
    return CrawlStatus(
        crawl=crawl,
        queued=queued,
        in_flight=leased,
        seen=stats.get("seen", 0),
        items=items,
        live_workers=len(live),
        workers=sorted(live),
        seeded_round=seeded,
        round=_int(meta.get("round")),
        seeding=seeding,
        complete=seeded >= 1 and not seeding and queued == 0 and leased == 0 and lost is None,
        pages=pages,
        errors=stats.get("errors", 0),
        retries=stats.get("retries", 0),
        bytes=stats.get("bytes", 0),
        rejected=stats.get("rejected", 0),
        pages_per_min=round(pages_per_minute(stats, now_ms), 1),
        round_trips=rt,
        round_trips_per_page=round(rt / pages, 4) if pages else None,
        pushed=stats.get("pushed", 0),
        pushed_duplicate=stats.get("pushed_duplicate", 0),
        pushed_invalid=stats.get("pushed_invalid", 0),
        stats={kk: v for kk, v in sorted(stats.items()) if not kk.startswith("pm:")},
        exists=bool(raw_meta or raw_stats or queued),
        lost=lost,
        hosts=_int(n_hosts),
        busiest_hosts=loads,
    )


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def format_status(st: CrawlStatus) -> str:
    """Human-readable status, a few aligned lines."""
    if not st.exists:
        return (
            f"crawl {st.crawl!r}: nothing in Redis under kc:{{{st.crawl}}}: (not started, or wrong --crawl/--redis-url)"
        )
    state = (
        "LOST DATA"
        if st.lost
        else "seeding"
        if st.seeding
        else ("complete" if st.complete else ("running" if st.seeded_round else "waiting for seeds"))
    )
    rtp = f"{st.round_trips_per_page:.3f}" if st.round_trips_per_page is not None else "-"
    errors = ", ".join(f"{k[6:]}={v}" for k, v in st.stats.items() if k.startswith("error:"))
    # the round being seeded while seeding, else the last seeded one (the store contract's RoundInfo.round)
    shown_round = max(st.round, st.seeded_round)
    lines = [
        f"crawl          {st.crawl}  (round {shown_round}, {state})",
        f"queue          {st.queued:,} queued, {st.in_flight:,} in flight",
        f"seen           {st.seen:,} request fingerprints",
        f"pages          {st.pages:,}  ({st.pages_per_min:,.0f} pages/min, {st.bytes / 1e6:,.1f} MB)",
        f"items          {st.items:,}",
        f"errors         {st.errors:,}"
        + (f"  ({errors})" if errors else "")
        + f", {st.retries:,} retries, {st.rejected:,} rejected",
        *(
            [
                f"pushed         {st.pushed:,} from outside ({st.pushed_duplicate:,} duplicate, {st.pushed_invalid:,} invalid)"
            ]
            if st.pushed or st.pushed_duplicate or st.pushed_invalid
            else []
        ),
        *_format_hosts(st),
        f"workers        {st.live_workers} live" + (f": {', '.join(st.workers)}" if st.workers else ""),
        f"redis          {st.round_trips:,} round trips ({rtp} per page)",
    ]
    if st.lost:
        lines.append(f"LOST DATA      {st.lost}")
    return "\n".join(lines)


def _format_hosts(st: CrawlStatus, show: int = 5) -> list[str]:
    if not st.hosts:
        return []
    lines = [f"hosts          {st.hosts:,} with queued or leased requests" + (", busiest:" if st.busiest_hosts else "")]
    for h in st.busiest_hosts[:show]:
        delay = "no delay" if h.delay is None else f"delay {h.delay:.2f}s"
        if h.crawl_delay is not None:
            delay += f" (Crawl-delay {h.crawl_delay:g}s)"
        wait = f", next in {h.next_in:.1f}s" if h.next_in > 0 else ""
        lines.append(f"  {h.slot:<30} {h.queued:,} queued, {h.in_flight:,} in flight, {delay}{wait}")
    return lines


def export_items(client: redis.Redis, crawl: str, path: str | Path, since: str = "0", batch: int = 1000) -> int:
    """Write the crawl's items to ``path`` (format by extension, as ``-o``); returns the count.

    ``since="0"`` (all items) rewrites the file; a stream id appends the entries after it (incremental export).
    """
    from .feeds.sink import FeedItem, FileSink
    from .feeds.spec import make_spec

    k = Keys(crawl)
    last = since or "0"
    spec = make_spec(str(path), overwrite=last == "0")
    if spec.kind != "file":
        raise ConfigurationError("export writes a file: give a path (FILE or FILE:FORMAT)")
    sink = FileSink(spec, spec.uri)
    sink.open(None)
    n = 0
    try:
        while True:
            entries: Any = client.xrange(k.items, min=f"({last}" if last != "0" else "-", max="+", count=batch)
            if not entries:
                break
            # entries without v were written before the envelope had a version: version 1 (feeds/stream.py)
            lines = [
                bytes(fields[b"j"]) for _id, fields in entries if b"j" in fields and fields.get(b"v", b"1") == b"1"
            ]
            skipped = sum(1 for _id, fields in entries if b"j" in fields and fields.get(b"v", b"1") != b"1")
            if skipped:
                log.error("export: %d item stream entr(ies) of an unknown envelope version left out", skipped)
            sink.write([FeedItem(n + i, line, b"") for i, line in enumerate(lines)])
            n += len(lines)
            last = _s(entries[-1][0])
    finally:
        sink.close()
    log.info("exported %d item(s) of %s to %s (last id %s)", n, crawl, path, last)
    return n
