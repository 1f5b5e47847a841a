"""Files rotated every N items (``batch_item_count`` and ``%(batch)s``), S3 object names, and item versions.

Rotated files are read back with the standard library's readers (tests/unit/test_feeds.py's ``read``),
through the SQLite outbox as a crawl writes them, including a kill between a write and its record.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from kubecrawl.backends.base import ItemRecord, Outcome
from kubecrawl.backends.sqlite import SQLiteBackend
from kubecrawl.errors import ConfigurationError
from kubecrawl.feeds.s3 import batch_name, object_key_template
from kubecrawl.feeds.sink import FeedItem, RotatingFileSink, make_sink
from kubecrawl.feeds.spec import make_spec
from kubecrawl.feeds.stream import ITEM_WIRE_VERSION, StreamDelivery
from tests.unit.test_feeds import hostile_items, read

LUA = Path(__file__).resolve().parents[2] / "worker" / "kubecrawl" / "backends" / "lua" / "commit.lua"


def files(tmp: Path, fmt: str) -> list[Path]:
    return sorted(tmp.glob(f"items-*.{fmt}"))


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "xml"])
async def test_a_crawl_rotates_every_n_items_and_every_file_round_trips(tmp_path: Path, fmt: str) -> None:
    items = hostile_items()[:53]
    spec = make_spec(str(tmp_path / f"items-%(batch)s.{fmt}"), {"batch_item_count": 7, "fields": ["url", "title"]})
    b = SQLiteBackend(tmp_path / "state", feeds=[spec], feed_name="site")
    await b.open()
    for i in range(0, len(items), 5):  # commits of 5: rotations fall inside commits
        await b.commit([Outcome(None, items=[ItemRecord.build(it, ["url"]) for it in items[i : i + 5]])])
    await b.close()
    got = files(tmp_path, fmt)
    assert [p.name for p in got] == [f"items-{n:06d}.{fmt}" for n in range(1, 9)]  # 7 * 7 + 4
    per_file = [read(p, fmt) for p in got]
    assert [len(f) for f in per_file] == [7] * 7 + [4]
    assert [it["url"] for f in per_file for it in f] == [it["url"] for it in items]


async def test_exactly_n_items_leaves_no_empty_file_behind(tmp_path: Path) -> None:
    spec = make_spec(str(tmp_path / "items-%(batch)s.json"), {"batch_item_count": 5})
    b = SQLiteBackend(tmp_path / "state", feeds=[spec], feed_name="site")
    await b.open()
    await b.commit([Outcome(None, items=[ItemRecord.build({"n": i}, ["n"]) for i in range(10)])])
    await b.close()
    assert [len(read(p, "json")) for p in files(tmp_path, "json")] == [5, 5]


def test_a_write_repeated_after_a_kill_writes_nothing_twice(tmp_path: Path) -> None:
    """A kill between a write (that filled a file and opened the next) and its record: the next run
    goes back to the recorded checkpoint and writes the same items again."""
    spec = make_spec(str(tmp_path / "items-%(batch)s.csv"), {"batch_item_count": 4})
    batch = [FeedItem(i, orjson.dumps({"n": i, "s": 'a,"b"\n'}), b"") for i in range(12)]
    sink = make_sink(spec, spec.uri, name="s", item_dedup="off")
    assert isinstance(sink, RotatingFileSink)
    sink.open(None)
    recorded = sink.write(batch[:3])
    assert sink.room() == 1  # the store never hands it more than this
    sink.write(batch[3:4])  # fills file 1, opens file 2: killed before this is recorded
    again = make_sink(spec, spec.uri, name="s", item_dedup="off")
    again.open(recorded)
    for i in range(3, 12):
        again.write(batch[i : i + 1])
    again.close()
    got = [[int(r["n"]) for r in read(p, "csv")] for p in files(tmp_path, "csv")]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_rotation_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="needs both"):
        make_spec("items.jsonl", {"batch_item_count": 10})
    with pytest.raises(ConfigurationError, match="positive integer"):
        make_spec("items-%(batch)s.jsonl", {"batch_item_count": 0})
    with pytest.raises(ConfigurationError, match="files and s3"):
        make_spec("postgresql://u@h/db", {"batch_item_count": 10})
    with pytest.raises(ConfigurationError, match="s3:// feeds only"):
        make_spec("items.jsonl", {"endpoint": "http://127.0.0.1:1"})
    spec = make_spec("s3://b/p/%(name)s/items-%(batch)s.csv", {"endpoint": "http://127.0.0.1:9", "region": "x"})
    assert (spec.kind, spec.format, spec.endpoint, spec.region) == ("s3", "csv", "http://127.0.0.1:9", "x")
    assert spec.resolve("news", 2) == "s3://b/p/news/items-%(batch)s.csv"


def test_s3_object_names_are_deterministic_per_batch() -> None:
    assert object_key_template("/crawl/items.jsonl", "jsonl") == "crawl/items-%(batch)s.jsonl"
    assert object_key_template("/crawl/", "csv") == "crawl/%(batch)s.csv"
    assert object_key_template("", "jsonl") == "%(batch)s.jsonl"
    assert object_key_template("/a/%(batch)s/x.xml", "xml") == "a/%(batch)s/x.xml"
    assert batch_name(FeedItem(42, b"{}", b""), "3f2a") == "000000000042-3f2a"
    assert batch_name(FeedItem(0, b"{}", b"", ref="001733000000000-0000000002"), "news") == (
        "001733000000000-0000000002-news"
    )


def test_stream_entries_carry_the_envelope_version_and_old_ones_are_read() -> None:
    assert f"'v', '{ITEM_WIRE_VERSION}'" in LUA.read_text()  # what commit.lua writes is what readers expect
    d = StreamDelivery(None, "s", [], consumer="c", name="n", crawl="cr", item_dedup="url")
    entries = [
        (b"1-0", {b"j": b'{"a": 1}', b"k": b"00" * 20}),  # before versions: version 1
        (b"2-0", {b"j": b'{"a": 2}', b"k": b"11" * 20, b"v": b"1"}),
        (b"3-0", {b"j": b'{"a": 3}', b"k": b"22" * 20, b"v": b"2"}),  # a newer worker's: kept aside, not lost
        (b"4-0", None),  # trimmed under us
    ]
    items, ids, unknown = d._items(entries)
    assert [orjson.loads(i.data)["a"] for i in items] == [1, 2]
    assert [i.ref for i in items] == ["000000000000001-0000000000", "000000000000002-0000000000"]
    assert ids == ["1-0", "2-0", "3-0", "4-0"] and [u[0] for u in unknown] == ["3-0"]


def test_distributed_feeds_refuse_round_and_time_templates() -> None:
    with pytest.raises(ConfigurationError, match="cannot use %\\(round\\)s"):
        StreamDelivery(
            None, "s", [make_spec("s3://b/%(round)s/x.jsonl")], consumer="c", name="n", crawl="c", item_dedup="url"
        )
    with pytest.raises(ConfigurationError, match="postgresql:// and s3://"):
        StreamDelivery(None, "s", [make_spec("x.jsonl")], consumer="c", name="n", crawl="c", item_dedup="url")


def test_the_sqlite_outbox_records_a_rotated_feed_checkpoint(tmp_path: Path) -> None:
    """What the store records is the rotating sink's own checkpoint: file number, count, offset."""
    import asyncio

    spec = make_spec(str(tmp_path / "items-%(batch)s.jsonl"), {"batch_item_count": 3})

    async def run() -> None:
        b = SQLiteBackend(tmp_path / "state", feeds=[spec], feed_name="site")
        await b.open()
        await b.commit([Outcome(None, items=[ItemRecord.build({"n": i}, ["n"]) for i in range(4)])])
        await b.close()

    asyncio.run(run())
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite3")
    recorded = dict(db.execute("SELECT k, v FROM meta WHERE k LIKE 'exported_size:%'").fetchall())
    assert next(iter(recorded.values())).startswith("2:1:")
