"""Role ``none`` against real HTTP servers on 127.0.0.1: every page once, errors counted, text decoded right."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from kubecrawl import Request, Response, Spider
from tests.helpers.crawl import crawl
from tests.helpers.httpserver import RequestInfo, TestHTTPServer, generated_site, slow

ZH = "新浪滚动新闻：国务院常务会议部署经济工作"


class FollowAll(Spider):
    name = "follow-all"

    async def parse(self, response: Response):
        yield {
            "url": response.url,
            "title": response.css("title::text").get(),
            "h1": response.xpath("//h1/text()").get(),
            "encoding": response.encoding,
        }
        for req in response.follow_all(css="a"):
            yield req


def read_items(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


async def test_generated_site_every_page_fetched_once(http_server: TestHTTPServer, tmp_path: Path) -> None:
    paths = generated_site(http_server, 300, links=15)
    spider = FollowAll(start_urls=[http_server.url("/gen/0.html")])
    out = tmp_path / "items.jsonl"
    stats, _ = await crawl(spider, output=out, concurrency=16)
    fetched = Counter(http_server.paths())
    fetched.pop("/robots.txt", None)
    assert set(fetched) == paths
    assert max(fetched.values()) == 1
    items = read_items(out)
    assert sorted(i["url"] for i in items) == sorted(http_server.url(p) for p in paths)
    assert stats["pages"] == 300 and stats["items"] == 300 and stats["errors"] == 0


def _gbk_page(title: str, meta: str = "") -> bytes:
    return f"<html><head>{meta}<title>{title}</title></head><body><h1>{title}</h1></body></html>".encode("gbk")


async def test_chinese_pages_decode_without_mojibake(http_server: TestHTTPServer, tmp_path: Path) -> None:
    s = http_server
    s.html("/utf8-header", f"<html><head><title>{ZH}</title></head><body><h1>{ZH}</h1></body></html>")
    s.route("/gbk-header", lambda _r: (200, {"Content-Type": "text/html; charset=gbk"}, _gbk_page(ZH)))
    s.route("/gb2312-header", lambda _r: (200, {"Content-Type": "text/html; charset=GB2312"}, _gbk_page(ZH + "〇")))
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
    s.route("/gbk-meta", lambda _r: (200, {"Content-Type": "text/html"}, _gbk_page(ZH, meta)))
    s.route("/gbk-meta5", lambda _r: (200, {"Content-Type": "text/html"}, _gbk_page(ZH, '<meta charset="gbk">')))
    long_text = (ZH + "，") * 40
    s.route("/gbk-nowhere", lambda _r: (200, {"Content-Type": "text/html"}, _gbk_page(long_text)))
    bom = b"\xef\xbb\xbf" + f"<html><head><title>{ZH}</title></head><body><h1>{ZH}</h1></body></html>".encode()
    s.route("/utf8-bom", lambda _r: (200, {"Content-Type": "text/html"}, bom))
    links = "".join(
        f'<a href="{p}">x</a>'
        for p in (
            "/utf8-header",
            "/gbk-header",
            "/gb2312-header",
            "/gbk-meta",
            "/gbk-meta5",
            "/gbk-nowhere",
            "/utf8-bom",
        )
    )
    s.html("/", f"<html><body>{links}</body></html>")
    out = tmp_path / "items.jsonl"
    stats, _ = await crawl(FollowAll(start_urls=[s.url("/")]), output=out)
    by_path = {i["url"].split(str(s.port), 1)[1]: i for i in read_items(out)}
    assert stats["errors"] == 0
    assert by_path["/utf8-header"]["h1"] == ZH
    assert by_path["/gbk-header"]["h1"] == ZH
    assert by_path["/gbk-header"]["encoding"] == "gb18030"
    assert by_path["/gb2312-header"]["h1"] == ZH + "〇"
    assert by_path["/gbk-meta"]["h1"] == ZH
    assert by_path["/gbk-meta5"]["h1"] == ZH
    assert by_path["/gbk-nowhere"]["h1"] == long_text
    assert by_path["/utf8-bom"]["h1"] == ZH


async def test_errors_are_counted_never_crash(http_server: TestHTTPServer, tmp_path: Path) -> None:
    s = http_server

    def flaky(req: RequestInfo):
        if req.hits == 1:
            return 500, {"Content-Type": "text/plain"}, b"boom"
        return 200, {"Content-Type": "text/html"}, b"<html><head><title>flaky ok</title></head></html>"

    def rate_limited(req: RequestInfo):
        if req.hits == 1:
            return 429, {"Retry-After": "1", "Content-Type": "text/plain"}, b"slow down"
        return 200, {"Content-Type": "text/html"}, b"<html><head><title>429 ok</title></head></html>"

    s.route("/flaky", flaky)
    s.route("/429", rate_limited)
    s.route("/always500", lambda _r: (503, {"Content-Type": "text/plain"}, b"down"))
    s.route("/r1", lambda _r: (301, {"Location": "/r2"}, b""))
    s.route("/r2", lambda _r: (302, {"Location": s.url("/r3")}, b""))
    s.route("/r3", lambda _r: (301, {"Location": "/final"}, b""))
    s.html("/final", "<html><head><title>final</title></head></html>")
    s.route("/loop-a", lambda _r: (302, {"Location": "/loop-b"}, b""))
    s.route("/loop-b", lambda _r: (302, {"Location": "/loop-a"}, b""))
    # far past download_timeout, which is itself far above what a page takes on a loaded machine
    s.route("/slow", slow(6.0, (200, {"Content-Type": "text/html"}, b"<title>slow</title>")))
    s.route("/huge", lambda _r: (200, {"Content-Type": "text/html"}, b"x" * 300_000))
    s.route("/huge-chunked", lambda _r: (200, {"Content-Type": "text/html"}, (b"y" * 16384 for _ in range(30))))
    s.route(
        "/malformed",
        lambda _r: (
            200,
            {"Content-Type": "text/html; charset=utf-8"},
            b"<html><title>bad \xff\xfe bytes</title><body><div><p>unclosed<a href='/final'>x",
        ),
    )
    s.route("/robots.txt", lambda _r: (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"))
    s.html("/private/secret", "<title>secret</title>")
    s.html("/missing-target", "unused")
    paths = [
        "/flaky",
        "/429",
        "/always500",
        "/r1",
        "/loop-a",
        "/slow",
        "/huge",
        "/huge-chunked",
        "/malformed",
        "/private/secret",
        "/404",
    ]
    s.html("/", "<html><body>" + "".join(f'<a href="{p}">x</a>' for p in paths) + "</body></html>")
    out = tmp_path / "items.jsonl"
    stats, _ = await crawl(
        FollowAll(start_urls=[s.url("/")]),
        output=out,
        download_timeout=2.5,
        max_retries=2,
        max_body_size=200_000,
    )
    titles = {i["title"] for i in read_items(out)}
    assert {"flaky ok", "429 ok", "final"} <= titles
    assert any(t and t.startswith("bad ") for t in titles)  # malformed HTML still parsed
    kinds = stats.summary()["errors_by_kind"]
    assert kinds == {
        "http_503": 1,
        "redirect_loop": 1,
        "timeout": 1,
        "too_large": 2,
        "http_404": 1,
    }, kinds
    assert stats["robots_denied"] == 1
    assert "/private/secret" not in s.paths()
    assert s.hits["/always500"] == 3  # first try + 2 retries
    assert s.hits["/final"] == 1  # reached by the redirect chain once; the malformed page's link is deduplicated
    assert s.hits["/429"] == 2
    # retries of requests that later succeeded count too: flaky 1, 429 1, always500 2, slow 2
    assert stats["retries"] == 6


async def test_priorities_and_dont_filter(http_server: TestHTTPServer, tmp_path: Path) -> None:
    s = http_server
    for p in ("/a", "/b", "/c"):
        s.html(p, f"<title>{p}</title>")

    class Prio(Spider):
        name = "prio"

        async def start_requests(self):
            yield Request(s.url("/a"), priority=0)
            yield Request(s.url("/b"), priority=10)
            yield Request(s.url("/c"), priority=5)
            yield Request(s.url("/a"), priority=0)  # duplicate: filtered
            yield Request(s.url("/a"), priority=0, dont_filter=True)

        async def parse(self, response):
            yield {"url": response.url, "n": response.meta.get("round")}

    stats, _ = await crawl(Prio(), concurrency=1, obey_robots=False, item_dedup="off")
    assert [p for p in s.paths() if p != "/robots.txt"] == ["/b", "/c", "/a", "/a"]
    assert stats["filtered"] == 1


async def test_callbacks_by_name_and_json_and_pipelines(http_server: TestHTTPServer, tmp_path: Path) -> None:
    s = http_server
    s.route(
        "/api",
        lambda _r: (
            200,
            {"Content-Type": "application/json"},
            orjson.dumps({"rows": [{"u": "/d1"}, {"u": "/d2"}, {"u": "/d3"}]}),
        ),
    )
    for p in ("/d1", "/d2", "/d3"):
        s.html(p, f"<title>doc {p}</title>")

    class Drop3:
        opened = closed = False

        def open(self, spider):
            Drop3.opened = True

        def process_item(self, item, spider):
            from kubecrawl import DropItem

            if item["url"].endswith("/d3"):
                raise DropItem("no d3")
            item["seen_by"] = "pipeline"
            return item

        def close(self, spider):
            Drop3.closed = True

    class Api(Spider):
        name = "api"
        start_urls = [s.url("/api")]
        pipelines = [Drop3]

        async def parse(self, response):
            for row in response.json()["rows"]:
                yield response.follow(row["u"], callback=self.parse_doc, cb_kwargs={"tag": "t"})

        def parse_doc(self, response, tag):  # a plain (sync) generator works too
            yield {"url": response.url, "title": response.css("title::text").get(), "tag": tag}

    out = tmp_path / "items.jsonl"
    stats, _ = await crawl(Api(), output=out)
    items = read_items(out)
    assert sorted(i["title"] for i in items) == ["doc /d1", "doc /d2"]
    assert all(i["seen_by"] == "pipeline" and i["tag"] == "t" for i in items)
    assert stats["dropped"] == 1 and Drop3.opened and Drop3.closed


async def test_item_content_dedup_skips_same_features(http_server: TestHTTPServer, tmp_path: Path) -> None:
    s = http_server
    s.html("/x1", "<title>same</title>")
    s.html("/x2", "<title>same</title>")

    class Same(Spider):
        name = "same"
        start_urls = [s.url("/x1"), s.url("/x2")]
        item_key = ["title"]

        async def parse(self, response):
            yield {"title": response.css("title::text").get(), "url": response.url}

    out = tmp_path / "items.jsonl"
    stats, _ = await crawl(Same(), output=out, obey_robots=False)
    assert len(read_items(out)) == 1
    assert stats["items_duplicate"] == 1


async def test_cookies_are_kept_across_requests(http_server: TestHTTPServer) -> None:
    s = http_server
    s.route(
        "/login",
        lambda _r: (200, {"Set-Cookie": "sid=abc123; Path=/", "Content-Type": "text/html"}, b'<a href="/me">me</a>'),
    )

    def me(req: RequestInfo):
        ok = "sid=abc123" in req.headers.get("Cookie", "")
        return 200, {"Content-Type": "text/html"}, f"<title>{'in' if ok else 'out'}</title>".encode()

    s.route("/me", me)
    stats, proc = await crawl(FollowAll(start_urls=[s.url("/login")]), obey_robots=False, concurrency=1)
    assert stats["pages"] == 2
    assert proc.downloader.jars.get(None).get("sid") == "abc123"
