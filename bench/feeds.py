"""``python -m bench feeds``: items per CPU-second of each feed format through the SQLite outbox.

Commits ``--items`` items (about 300 bytes of JSON each, in commits of ``--batch``) into a
``--state-dir`` store with one feed, and reports the process CPU seconds (``time.process_time``: this
process only, so a PostgreSQL server's own CPU is not counted) per feed against no feed at all.
``--postgres URL`` adds a ``postgresql://`` feed, ``--s3 s3://BUCKET/PREFIX/`` an S3 feed (endpoint and
credentials from the ``AWS_*`` variables), and ``--seaweedfs`` starts a SeaweedFS for it from the
tests' cached build (tests/helpers/s3_server.py): ``python -m bench feeds --seaweedfs`` is one command.
The S3 client's own threads count (``process_time`` is the whole process). See docs/feeds.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from kubecrawl.backends.base import ItemRecord, Outcome
from kubecrawl.backends.sqlite import SQLiteBackend
from kubecrawl.feeds.spec import make_spec


def _item(i: int) -> dict[str, object]:
    return {
        "url": f"https://news.example/{i // 100}/article-{i}.html",
        "title": f'Article {i}: café, "quotes" & <tags>',
        "tags": ["a", "b", str(i % 7)],
        "published": "2026-12-01T10:00:00Z",
        "body": "lorem ipsum dolor sit amet " * 6,
    }


async def _run(feed: str | None, n: int, batch: int, table: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        if feed is not None:
            uri = feed if "://" in feed else str(Path(tmp) / feed)
            specs = [make_spec(uri, {"table": table} if feed.startswith("postgres") else None)]
        b = SQLiteBackend(Path(tmp) / "state", item_dedup="off", feeds=specs, feed_name="bench")
        await b.open()
        recs = [ItemRecord.build(_item(i), []) for i in range(n)]
        t0 = time.process_time()
        for i in range(0, n, batch):
            await b.commit([Outcome(None, items=recs[i : i + batch])])
        await b.close()
        return time.process_time() - t0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench feeds")
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--postgres", help="postgresql://... to include the PostgreSQL feed")
    p.add_argument("--s3", help="s3://bucket/prefix/ to include an S3 feed (AWS_* variables for the endpoint)")
    p.add_argument("--seaweedfs", action="store_true", help="start a SeaweedFS (tests' cached build) for --s3")
    args = p.parse_args(argv)
    feeds: list[str | None] = [None, "items.jsonl", "items.csv", "items.json", "items.xml"]
    if args.postgres:
        feeds.append(args.postgres)
    with contextlib.ExitStack() as stack:
        if args.seaweedfs:
            os.environ.update(stack.enter_context(_seaweedfs()))
            args.s3 = args.s3 or "s3://bench/items.jsonl"
        if args.s3:
            feeds.append(args.s3)
        return _report(args, feeds)


@contextlib.contextmanager
def _seaweedfs() -> Iterator[dict[str, str]]:
    from tests.helpers.s3_server import SeaweedS3

    with tempfile.TemporaryDirectory() as tmp:
        server = SeaweedS3(Path(tmp)).start()
        try:
            yield server.env
        finally:
            server.stop()


def _report(args: argparse.Namespace, feeds: list[str | None]) -> int:
    base = asyncio.run(_run(None, args.items, args.batch, "bench"))
    rows = []
    for i, feed in enumerate(feeds[1:]):
        cpu = asyncio.run(_run(feed, args.items, args.batch, f"bench_{i}"))
        name = str(feed).split(":", 1)[0] if feed and "://" in feed else str(feed).split(".")[1]
        rows.append({"feed": name, "cpu_s": round(cpu, 3), "items_per_cpu_s": round(args.items / cpu),
                     "feed_cpu_s_per_10k": round((cpu - base) / args.items * 10_000, 3)})  # fmt: skip
    print(json.dumps({"items": args.items, "batch": args.batch, "store_only_cpu_s": round(base, 3), "feeds": rows}))
    for r in rows:
        print(
            f"{r['feed']:>10}  {r['items_per_cpu_s']:>8} items/CPU-s  (+{r['feed_cpu_s_per_10k']} CPU-s per 10k over the store)"
        )
    return 0
