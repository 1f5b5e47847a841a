"""Declarative spiders end to end: a YAML/JSON document crawls a real site on 127.0.0.1 through the CLI,
and a bad document fails at start-up with exit code 2 and the path of the bad field."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from kubecrawl.declarative import spider_class_from_rules, start_urls
from kubecrawl.demo.books_site import BooksSite, book
from kubecrawl.rules import validate_rules
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import TestHTTPServer

BOOKS: dict[str, Any] = {
    "name": "books",
    "base_url": "http://books.toscrape.com",
    "start": {"urls": ["/"], "callback": "catalogue"},
    "item_key": ["url"],
    "politeness": {"concurrency": 4, "obey_robots": True},
    "callbacks": {
        "catalogue": {
            "follow": [
                {"css": "article.product_pod h3 a", "callback": "book", "deny": ["book-13\\.html$"]},
                {"css": "li.next a", "callback": "catalogue"},
            ],
        },
        "book": {
            "items": [
                {
                    "fields": {
                        "url": {"response": "url"},
                        "title": {"css": "div.product_main h1", "required": True},
                        "price": {"css": "p.price_color::text", "regex": "([\\d.]+)", "post": ["float"]},
                        "rating": {"xpath": "//p[contains(@class, 'star-rating')]/@class", "post": ["re:(\\w+)$"]},
                        "in_stock": {"css": "p.availability::text", "post": ["strip"]},
                        "shop": {"const": "demo"},
                    }
                }
            ]
        },
    },
}


@pytest.fixture
def books_site() -> Iterator[BooksSite]:
    site = BooksSite(books=30).start()
    try:
        yield site
    finally:
        site.stop()


def run_cli(*args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "kubecrawl.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def items_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_cli_crawls_a_declarative_spider(books_site: BooksSite, tmp_path: Path, fmt: str) -> None:
    doc = tmp_path / f"books.{fmt}"
    doc.write_text(yaml.safe_dump(BOOKS, allow_unicode=True) if fmt == "yaml" else orjson.dumps(BOOKS).decode())
    out = tmp_path / "books.jsonl"
    res = run_cli("crawl", str(doc), "-o", str(out), "-s", f"base_url={books_site.url('')}", "-s", "progress=off")
    assert res.returncode == 0, res.stderr
    items = {i["url"].rsplit("/", 1)[1]: i for i in items_of(out)}
    assert set(items) == {f"book-{n}.html" for n in range(1, 31) if n != 13}  # 3 catalogue pages; 13 denied
    b7 = book(7)
    assert items["book-7.html"] == {
        "url": books_site.url("/catalogue/book-7.html"),
        "title": b7["title"],
        "price": b7["price"],
        "rating": b7["rating"],
        "in_stock": "In stock" if b7["in_stock"] else "Out of stock",
        "shop": "demo",
    }


def test_items_per_node_and_start_template(books_site: BooksSite, tmp_path: Path) -> None:
    """One item per product on each catalogue page, pages listed by a {page} template."""
    doc = tmp_path / "list.yaml"
    doc.write_text(
        yaml.safe_dump(
            {
                "name": "catalogue",
                "start": {"template": books_site.url("/catalogue/page-{page}.html"), "pages": {"first": 1, "last": 3}},
                "item_key": ["title"],
                "callbacks": {
                    "parse": {
                        "items": [
                            {
                                "each": {"css": "article.product_pod"},
                                "fields": {
                                    "title": {"css": "h3 a::attr(title)"},
                                    "link": {"css": "h3 a::attr(href)", "post": ["urljoin"]},
                                    "price": {"css": ".price_color::text", "post": ["re:([\\d.]+)", "float"]},
                                },
                            }
                        ]
                    }
                },
            }
        )
    )
    out = tmp_path / "items.jsonl"
    res = run_cli("crawl", str(doc), "-o", str(out), "-s", "progress=off")
    assert res.returncode == 0, res.stderr
    items = items_of(out)
    assert sorted(i["title"] for i in items) == sorted(book(n)["title"] for n in range(1, 31))
    first = next(i for i in items if i["title"] == book(1)["title"])
    assert first["link"] == books_site.url("/catalogue/book-1.html") and first["price"] == book(1)["price"]


def test_bad_document_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = {**BOOKS, "callbacks": {**BOOKS["callbacks"], "book": {"items": [{"fields": {"title": {"csss": "h1"}}}]}}}
    doc = tmp_path / "bad.yaml"
    doc.write_text(yaml.safe_dump(bad))
    res = run_cli("crawl", str(doc))
    assert res.returncode == 2
    assert "callbacks.book.items.0.fields.title.csss" in res.stderr
    assert "bad.yaml" in res.stderr


def test_unparsable_document_exits_2(tmp_path: Path) -> None:
    doc = tmp_path / "broken.yaml"
    doc.write_text("name: [unclosed\n")
    res = run_cli("crawl", str(doc))
    assert res.returncode == 2 and "broken.yaml" in res.stderr


def test_unknown_setting_in_document_is_a_configuration_error() -> None:
    with pytest.raises(Exception, match=r"settings\.concurency"):
        spider_class_from_rules({**BOOKS, "settings": {"concurency": 3}})


def test_base_url_override_moves_absolute_start_urls_of_the_document() -> None:
    rules = validate_rules(
        {
            "name": "x",
            "base_url": "https://feed.example.com",
            "start": {"urls": ["https://feed.example.com/api?x=1", "/rel", "https://other.example/keep"]},
            "callbacks": {"parse": {}},
        }
    )
    assert start_urls(rules) == [
        "https://feed.example.com/api?x=1",
        "https://feed.example.com/rel",
        "https://other.example/keep",
    ]
    assert start_urls(rules, "http://127.0.0.1:8080") == [
        "http://127.0.0.1:8080/api?x=1",
        "http://127.0.0.1:8080/rel",
        "https://other.example/keep",
    ]


async def test_follow_rules_allowed_domains_meta_and_required_fields(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    s = http_server
    s.html(
        "/",
        '<a class="n" href="/n/1" data-id="1">one</a><a class="n" href="/n/2" data-id="2">two</a>'
        '<a class="n" href="http://elsewhere.invalid/n/3" data-id="3">three</a><a class="n" href="/n/4" data-id="4">x</a>',
    )
    s.html("/n/1", "<h1>第一条</h1>")
    s.html("/n/2", "<h1>第二条</h1>")
    s.html("/n/4", "<p>no title here</p>")
    cls = spider_class_from_rules(
        {
            "name": "follow",
            "start": {"urls": [s.url("/")]},
            "allowed_domains": ["127.0.0.1"],
            "item_key": ["title"],
            "callbacks": {
                "parse": {
                    "follow": [
                        {
                            "each": {"css": "a.n"},
                            "xpath": "@href",
                            "callback": "page",
                            "meta": {"id": {"xpath": "@data-id", "post": ["int"]}},
                        }
                    ]
                },
                "page": {
                    "items": [
                        {
                            "fields": {
                                "id": {"meta": "id"},
                                "title": {"css": "h1", "required": True},
                                "url": {"response": "url"},
                            }
                        }
                    ]
                },
            },
        }
    )
    out = tmp_path / "items.jsonl"
    stats, _ = await crawl(cls(), output=out)
    items = sorted(items_of(out), key=lambda i: i["id"])
    assert [(i["id"], i["title"]) for i in items] == [(1, "第一条"), (2, "第二条")]
    assert "/n/4" in s.paths()  # fetched, but its item lacked the required title
    assert stats["errors"] == 0


def test_demo_crawls_the_bundled_bookshop_with_the_example_spider(tmp_path: Path) -> None:
    out = tmp_path / "books.jsonl"
    res = run_cli("demo", "-o", str(out))
    assert res.returncode == 0, res.stderr
    items = {i["title"]: i for i in items_of(out)}
    assert len(items) == 50
    b = book(42)
    assert items[b["title"]]["price"] == b["price"] and items[b["title"]]["in_stock"] == b["in_stock"]
    assert f"50 book(s) written to {out}" in res.stderr


async def test_regex_links_revisit_age_and_incremental_from_the_document(http_server: TestHTTPServer) -> None:
    """Links found by a regex in a script; the list is incremental; one follow rule re-visits its pages."""
    s = http_server
    s.html("/", '<script>var pages = ["/hot/1", "/hot/2"]; var archive = "/old/1";</script>')
    for p in ("/hot/1", "/hot/2", "/old/1"):
        s.html(p, f"<h1>{p}</h1>")
    cls = spider_class_from_rules(
        {
            "name": "regex_links",
            "start": {"urls": [s.url("/")]},
            "incremental": {"enabled": True},
            "item_dedup": "off",
            "callbacks": {
                "parse": {
                    "follow": [
                        {"regex": r'"(/hot/\d+)"', "callback": "page", "fingerprint_ttl": 1e-6},
                        {"regex": r'archive = "([^"]+)"', "callback": "page"},
                    ]
                },
                "page": {"items": [{"fields": {"h1": {"css": "h1"}}}]},
            },
        }
    )
    assert cls.incremental
    await crawl(cls(), every=0.01, max_rounds=3)
    fetched = s.paths()
    assert fetched.count("/") == 3
    assert fetched.count("/hot/1") == 3 and fetched.count("/hot/2") == 3
    assert fetched.count("/old/1") == 1


async def test_document_wide_revisit_age(http_server: TestHTTPServer) -> None:
    s = http_server
    s.html("/", '<a href="/a">a</a>')
    s.html("/a", "<h1>a</h1>")
    cls = spider_class_from_rules(
        {
            "name": "age",
            "start": {"urls": [s.url("/")]},
            "incremental": {"enabled": True, "fingerprint_ttl": 1e-6},
            "callbacks": {"parse": {"follow": [{"css": "a", "callback": "parse"}]}},
        }
    )
    assert cls.custom_settings["fingerprint_ttl"] == 1e-6
    await crawl(cls(), every=0.01, max_rounds=2)
    assert s.paths().count("/a") == 2
