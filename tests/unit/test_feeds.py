"""Feed specs and file formats: every format round-trips through the standard library's readers.

The item values include the input strings of the WHATWG URL test data (tests/data/wpt-url, written by
others: odd Unicode, control characters, quotes, tabs and newlines) besides hand-picked hostile ones.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubecrawl.errors import ConfigurationError
from kubecrawl.feeds.sink import FeedItem, FileSink
from kubecrawl.feeds.spec import feeds_from_settings, make_spec
from kubecrawl.settings import build_settings

DATA = Path(__file__).resolve().parents[1] / "data" / "wpt-url" / "urltestdata.json"


def wpt_strings() -> list[str]:
    cases = json.loads(DATA.read_text(encoding="utf-8"))
    return [c["input"] for c in cases if isinstance(c, dict) and isinstance(c.get("input"), str)]


def hostile_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"url": "https://a.example/1", "title": 'quote " comma , semicolon ; newline \n tab \t', "n": 1},
        {"url": "https://a.example/2", "title": "<b>&amp; ]]> </items> ]", "n": 2.5},
        {"url": "https://a.example/3", "title": "中文 русский émoji 🙂", "n": None},
        {"url": "https://a.example/4", "title": "", "n": True},
    ]
    items += [{"url": f"https://wpt.example/{i}", "title": s, "n": i} for i, s in enumerate(wpt_strings())]
    return items


def write(path: Path, fmt: str, items: list[dict[str, Any]], batch: int = 7, **opts: Any) -> FileSink:
    spec = make_spec(f"{path}:{fmt}", opts)
    sink = FileSink(spec, spec.uri)
    sink.open(None)
    for i in range(0, len(items), batch):
        sink.write([FeedItem(i + j, orjson.dumps(it), b"") for j, it in enumerate(items[i : i + batch])])
    sink.close()
    return sink


def read(path: Path, fmt: str, encoding: str = "utf-8") -> list[dict[str, str]]:
    """Every item as ``{field: text}``, read with the standard library only."""
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding=encoding).splitlines()]
    if fmt == "json":
        return list(json.loads(path.read_text(encoding=encoding)))
    if fmt == "csv":
        with open(path, newline="", encoding=encoding) as f:
            return list(csv.DictReader(f))
    root = ET.parse(path).getroot()
    assert root.tag == "items"
    return [{child.tag: child.text or "" for child in item} for item in root]


def as_text(v: Any) -> str:
    """What CSV and XML carry for a value (text; JSON for non-strings; empty for null)."""
    return "" if v is None else v if isinstance(v, str) else json.dumps(v)


def xml_text(s: str) -> str:
    """XML 1.0 cannot carry C0 controls (other than tab/newline/CR) at all: they arrive as U+FFFD; a parser normalises CR."""
    out = "".join(
        "\ufffd" if (ord(c) < 0x20 and c not in "\t\n\r") or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff" else c
        for c in s
    )
    return out.replace("\r\n", "\n").replace("\r", "\n")


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "xml"])
def test_every_format_round_trips_through_the_standard_library(tmp_path: Path, fmt: str) -> None:
    items = hostile_items()
    path = tmp_path / f"items.{fmt}"
    write(path, fmt, items)
    got = read(path, fmt)
    assert len(got) == len(items)
    for want, have in zip(items, got, strict=True):
        if fmt in ("jsonl", "json"):
            assert have == want
        elif fmt == "csv":
            assert have == {k: as_text(v) for k, v in want.items()}
        else:
            assert have == {k: xml_text(as_text(v)) for k, v in want.items()}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "xml"])
def test_appending_to_a_feed_keeps_it_one_valid_document(tmp_path: Path, fmt: str) -> None:
    items = hostile_items()[:30]
    path = tmp_path / f"items.{fmt}"
    write(path, fmt, items[:10])
    write(path, fmt, items[10:])  # -o again: appended
    assert [i["url"] for i in read(path, fmt)] == [i["url"] for i in items]


@pytest.mark.parametrize("fmt", ["json", "xml", "csv", "jsonl"])
def test_an_empty_feed_is_a_valid_empty_document(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"empty.{fmt}"
    write(path, fmt, [])
    assert read(path, fmt) == []


def test_json_appends_to_a_foreign_array_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('[{"a": 1}]  \n')
    write(path, "json", [{"a": 2}])
    assert json.loads(path.read_text()) == [{"a": 1}, {"a": 2}]
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}\n')
    with pytest.raises(ConfigurationError, match="not a JSON array"):
        write(bad, "json", [{"a": 2}])
    assert bad.read_text() == '{"a": 1}\n'  # untouched


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "xml"])
def test_resuming_at_a_checkpoint_drops_what_was_written_after_it(tmp_path: Path, fmt: str) -> None:
    """What a kill -9 between writing a batch and recording its checkpoint leaves, and how a resume repairs it."""
    items = hostile_items()[:20]
    path = tmp_path / f"items.{fmt}"
    spec = make_spec(str(path))
    sink = FileSink(spec, spec.uri)
    sink.open(None)
    checkpoint = sink.write([FeedItem(i, orjson.dumps(it), b"") for i, it in enumerate(items[:8])])
    sink.write([FeedItem(i, orjson.dumps(it), b"") for i, it in enumerate(items[8:12])])  # never recorded
    with open(path, "ab") as f:
        f.write(b'{"half": ')  # and a half-written batch
    again = FileSink(spec, spec.uri)  # the next run: back to the checkpoint, the items after it once more
    again.open(checkpoint)
    again.write([FeedItem(i, orjson.dumps(it), b"") for i, it in enumerate(items[8:])])
    again.close()
    assert [i["url"] for i in read(path, fmt)] == [i["url"] for i in items]


def test_fields_and_encoding(tmp_path: Path) -> None:
    items = [{"title": "café ☃", "url": "u1", "extra": 1}, {"url": "u2"}]
    path = tmp_path / "items.csv"
    sink = write(path, "csv", items, fields=["url", "title"], encoding="latin-1")
    with open(path, newline="", encoding="latin-1") as f:
        rows = list(csv.reader(f))
    assert rows == [["url", "title"], ["u1", "café \\u2603"], ["u2", ""]]
    assert sink.enc.replaced == 1  # counted and logged, not silent
    xml_path = tmp_path / "items.xml"
    write(xml_path, "xml", items, encoding="latin-1")
    assert ET.parse(xml_path).getroot()[0].find("title").text == "café ☃"  # type: ignore[union-attr]
    js = tmp_path / "items.json"
    write(js, "json", items, encoding="latin-1", fields=["title"])
    assert json.loads(js.read_text(encoding="latin-1")) == [{"title": "café ☃"}, {"title": None}]


def test_csv_counts_fields_it_has_no_column_for(tmp_path: Path) -> None:
    sink = write(tmp_path / "a.csv", "csv", [{"a": 1}, {"a": 2, "b": 3, "c": 4}])
    assert sink.enc.dropped_fields == 2


def test_xml_field_names_that_are_not_xml_names(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    write(path, "xml", [{"1st": "x", "a b": "y", "xmlns": "z", "tags": ["p", "q"], "nested": {"k": "v"}}])
    item = ET.parse(path).getroot()[0]
    fields = {f.get("name"): f.text for f in item.findall("field")}
    assert fields == {"1st": "x", "a b": "y", "xmlns": "z"}
    assert [v.text for v in item.find("tags")] == ["p", "q"]  # type: ignore[union-attr]
    assert item.find("nested/k").text == "v"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("uri", "fmt", "kind"),
    [
        ("items.jsonl", "jsonl", "file"),
        ("items.jl", "jsonl", "file"),
        ("items.JSON", "json", "file"),
        ("out/items.csv", "csv", "file"),
        ("items.xml", "xml", "file"),
        ("items.txt", "jsonl", "file"),
        ("items.txt:csv", "csv", "file"),
        ("items.json:jsonlines", "jsonl", "file"),
        ("file:///tmp/x.xml", "xml", "file"),
        ("-", "jsonl", "stdout"),
        ("-:csv", "csv", "stdout"),
        ("postgresql://u@127.0.0.1:5432/db", "postgresql", "postgresql"),
        ("items-%(name)s-%(round)s.csv", "csv", "file"),
        ("s3://bucket/prefix/items.csv", "csv", "s3"),
        ("s3://bucket/prefix/", "jsonl", "s3"),
    ],
)
def test_format_by_extension_or_suffix(uri: str, fmt: str, kind: str) -> None:
    spec = make_spec(uri)
    assert (spec.format, spec.kind) == (fmt, kind)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://user:pw@bucket/items.jsonl", "never the URI"),
        ("s3:///items.jsonl", "s3://BUCKET/KEY"),
        ("items-%(batch)s.jsonl", "needs both batch_item_count"),
        ("ftp://host/items.jsonl", "unsupported scheme ftp://"),
        ("gs://bucket/x.csv", "unsupported scheme gs://"),
        ("items.csv:parquet", "unknown format 'parquet'"),
        ("items-%(nme)s.jsonl", "unknown template %(nme)s"),
        ("items-%(name).jsonl", "a template is written"),
        ("file://host/x.jsonl", "local path"),
    ],
)
def test_what_is_refused(uri: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_spec(uri)


def test_templates_and_the_feeds_setting() -> None:
    spec = make_spec("out/%(name)s-%(round)s-%(time)s.jsonl")
    assert spec.resolve("news", 3, now=0) == "out/news-3-1970-01-01T00-00-00.jsonl"
    s = build_settings(
        cli={"output": ["a.jsonl", "-"], "overwrite_output": ["b.csv"]},
        spider_settings={"feeds": {"c.xml": {"fields": ["url"], "encoding": "latin1"}}},
        environ={},
    )
    specs = s.feed_specs()
    assert [(f.uri, f.format, f.overwrite, f.fields, f.encoding) for f in specs] == [
        ("a.jsonl", "jsonl", False, None, "utf-8"),
        ("-", "jsonl", False, None, "utf-8"),
        ("b.csv", "csv", True, None, "utf-8"),
        ("c.xml", "xml", False, ("url",), "iso8859-1"),
    ]
    with pytest.raises(ConfigurationError, match="given twice"):
        feeds_from_settings(["a.jsonl"], ["./a.jsonl"], {})
    with pytest.raises(ConfigurationError, match="unknown option"):
        build_settings(cli={"feeds": {"a.csv": {"colums": ["x"]}}}, environ={})
    with pytest.raises(ConfigurationError, match="unknown encoding"):
        make_spec("a.csv", {"encoding": "klingon"})
    assert build_settings(cli={}, environ={"KUBECRAWL_OUTPUT": "x.csv"}).feed_specs()[0].format == "csv"


def test_stdout_sink_writes_a_complete_document(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    from kubecrawl.feeds.sink import StdoutSink

    sink = StdoutSink(make_spec("-:json"), "-")
    sink.open(None)
    sink.write([FeedItem(1, b'{"a":1}', b""), FeedItem(2, b'{"a":2}', b"")])
    sink.write([FeedItem(3, b'{"a":3}', b"")])
    sink.close()
    assert json.loads(capfdbinary.readouterr().out) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_csv_reader_sees_the_header_once_across_batches(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    write(path, "csv", [{"a": i, "b": str(i)} for i in range(10)], batch=3)
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    assert rows[0] == ["a", "b"] and len(rows) == 11 and rows.count(["a", "b"]) == 1
