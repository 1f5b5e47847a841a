"""``kubecrawl genspider`` (the generated spider runs), ``shell -c``, ``parse`` and the HTTP cache,
in the test project (``project/``) against the local quotes site."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

from tests.helpers.httpserver import TestHTTPServer

from .quotes_site import all_quotes
from .test_ported_spiders import as_multiset
from .test_project import clean_env, copy_project, kubecrawl, read_json


def _small_site() -> TestHTTPServer:
    """Three pages that link only to each other (a CrawlSpider must stay on 127.0.0.1)."""
    server = TestHTTPServer()
    for n in (1, 2, 3):
        links = "".join(f'<a href="/p{m}">p{m}</a>' for m in (1, 2, 3) if m != n)
        server.html(f"/p{n}", f"<html><head><title>page {n}</title></head><body>{links}</body></html>")
    return server.start()


def test_genspider_basic_and_crawl_templates_run(tmp_path: Path) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    site = _small_site()
    try:
        out = kubecrawl(kc, "genspider", "small-pages", site.url("/p1")).stdout
        assert "quotesproject.spiders.small_pages" in out
        written = kc / "quotesproject" / "spiders" / "small_pages.py"
        src = written.read_text(encoding="utf-8")
        assert "class SmallPagesSpider(scrapy.Spider)" in src and f'start_urls = ["{site.url("/p1")}"]' in src
        again = kubecrawl(kc, "genspider", "small-pages", site.url("/p1"), check=False)
        assert again.returncode == 2 and "already exists" in again.stderr
        clash = kubecrawl(kc, "genspider", "quotesproject", "example.com", check=False)
        assert clash.returncode == 2 and "project's name" in clash.stderr
        kubecrawl(kc, "crawl", "small-pages", "-O", "basic.json", "-s", "progress=off")
        assert read_json(kc / "basic.json") == [{"url": site.url("/p1"), "title": "page 1"}]

        kubecrawl(kc, "genspider", "-t", "crawl", "small-crawl", "127.0.0.1")
        path = kc / "quotesproject" / "spiders" / "small_crawl.py"
        path.write_text(path.read_text().replace('"https://127.0.0.1"', f'"{site.url("/p1")}"'), encoding="utf-8")
        assert kubecrawl(kc, "list").stdout.split() == ["authors", "quotes", "small-crawl", "small-pages"]
        kubecrawl(kc, "crawl", "small-crawl", "-O", "crawl.json", "-s", "progress=off")
        got = read_json(kc / "crawl.json")
        # every page through the rule; p1 too, as in Scrapy: the start request (dont_filter) is not in the dupefilter
        assert sorted(i["title"] for i in got) == ["page 1", "page 2", "page 3"]
    finally:
        site.stop()
    listed = kubecrawl(tmp_path, "genspider", "-l").stdout.split()
    assert listed == ["Available", "templates:", "basic", "crawl", "csvfeed", "xmlfeed"]
    kubecrawl(tmp_path, "genspider", "-t", "xmlfeed", "feeds", "example.com")  # outside a project: ./feeds.py
    assert "class FeedsSpider(XMLFeedSpider)" in (tmp_path / "feeds.py").read_text(encoding="utf-8")


def test_shell_c_evaluates_with_the_fetched_response(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    url = quotes_site.url("/page/2/")
    code = (
        "(response.status, response.css('small.author::text').get(), request.url,"
        " fetch(response.urljoin('/page/3/')).url, response.url, spider.name)"
    )
    out = kubecrawl(kc, "shell", url, "-c", code).stdout
    status, author, req_url, fetched, now, spider = ast.literal_eval(out.strip().splitlines()[-1])
    page2 = [p for p in json.loads((Path(__file__).parent / "site" / "quotes.json").read_text())["pages"]][1]
    assert (status, author, req_url) == (200, page2[0]["author"], url)
    assert fetched == now == quotes_site.url("/page/3/")
    assert spider == "default"  # no project spider has 127.0.0.1 as its domain


def test_shell_view_writes_the_page_with_a_base(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    """view(response) opens a local copy in the browser ($BROWSER here: a script that copies it)."""
    grab = tmp_path / "grab.py"
    grab.write_text(
        "import shutil, sys\nfrom urllib.parse import urlsplit, unquote\n"
        f"shutil.copy(unquote(urlsplit(sys.argv[1]).path), {str(tmp_path / 'seen.html')!r})\n",
        encoding="utf-8",
    )
    env = clean_env(BROWSER=f"{sys.executable} {grab} %s")
    out = kubecrawl(tmp_path, "shell", quotes_site.url("/"), "-c", "view(response)", env=env).stdout
    assert out.strip().splitlines()[-1] == "True"
    seen = (tmp_path / "seen.html").read_text(encoding="utf-8")
    assert f'<base href="{quotes_site.url("/")}">' in seen and 'class="quote"' in seen


def test_parse_prints_the_callbacks_items_and_requests(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    base = quotes_site.url("/").rstrip("/")
    url = quotes_site.url("/page/1/")
    args = ["parse", url, "--spider", "quotes", "-a", f"base={base}", "--callback", "parse"]
    levels = [json.loads(line) for line in kubecrawl(kc, *args, "--json").stdout.splitlines()]
    assert len(levels) == 1
    page1 = json.loads((Path(__file__).parent / "site" / "quotes.json").read_text())["pages"][0]
    assert as_multiset(levels[0]["items"]) == as_multiset(page1)  # pipelines are off unless --pipelines
    assert levels[0]["requests"] == [{"method": "GET", "url": quotes_site.url("/page/2/"), "callback": "parse"}]
    two = [json.loads(line) for line in kubecrawl(kc, *args, "--json", "-d", "2", "--pipelines").stdout.splitlines()]
    assert [lv["level"] for lv in two] == [1, 2] and all("tag_count" in i for i in two[1]["items"])
    human = kubecrawl(kc, *args).stdout
    assert ">>> STATUS DEPTH LEVEL 1 <<<" in human and "# Scraped Items" in human and "/page/2/> (parse)" in human
    authors = kubecrawl(
        kc, "parse", quotes_site.url("/author/Albert-Einstein"), "--spider", "authors", "-c", "parse_author", "--json"
    )
    assert json.loads(authors.stdout)["items"] == [{"name": "Albert Einstein", "born": "unknown"}]


def test_http_cache_second_run_makes_no_request(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    base = f"base={quotes_site.url('/').rstrip('/')}"
    cache = ["-s", "HTTPCACHE_ENABLED=True", "-s", "progress=off"]
    kubecrawl(kc, "crawl", "quotes", "-a", base, "-O", "first.json", *cache)
    first_requests = len(quotes_site.log)
    assert first_requests > 1 and ("GET", "/robots.txt") in quotes_site.log
    assert (kc / ".kubecrawl" / "httpcache").is_dir()  # next to scrapy.cfg
    kubecrawl(kc, "crawl", "quotes", "-a", base, "-O", "second.json", *cache)
    assert len(quotes_site.log) == first_requests  # the second run asked the server nothing
    assert as_multiset(read_json(kc / "second.json")) == as_multiset(read_json(kc / "first.json"))
    assert len(read_json(kc / "second.json")) == len(all_quotes())
    # expired entries are fetched again; ignored statuses are never stored
    kubecrawl(kc, "crawl", "quotes", "-a", base, "-O", "third.json", *cache, "-s", "HTTPCACHE_EXPIRATION_SECS=0.001")
    assert len(quotes_site.log) == 2 * first_requests


def test_shell_without_ipython_is_the_standard_console(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "kubecrawl.cli", "shell", quotes_site.url("/")],
        input="r = fetch(response.urljoin('/page/2/'))\nprint('got', r.status, len(response.css('div.quote')))\n",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page2 = json.loads((Path(__file__).parent / "site" / "quotes.json").read_text())["pages"][1]
    assert f"got 200 {len(page2)}" in proc.stdout


def test_parse_rules_picks_the_matching_rules_callback(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    spider = kc / "quotesproject" / "spiders" / "rules.py"
    spider.write_text(
        "from kubecrawl.scrapy.linkextractors import LinkExtractor\n"
        "from kubecrawl.scrapy.spiders import CrawlSpider, Rule\n\n\n"
        "class RulesSpider(CrawlSpider):\n"
        '    name = "rules"\n'
        '    rules = (Rule(LinkExtractor(allow=r"/author/"), callback="parse_author"), Rule(LinkExtractor(allow=r"/page/")))\n\n'
        "    def parse_author(self, response):\n"
        '        yield {"author": response.css("h3.author-title::text").get().strip()}\n',
        encoding="utf-8",
    )
    out = kubecrawl(kc, "parse", quotes_site.url("/author/Albert-Einstein"), "--spider", "rules", "-r", "--json")
    assert json.loads(out.stdout)["items"] == [{"author": "Albert Einstein"}]
    miss = kubecrawl(kc, "parse", quotes_site.url("/tag/love/"), "--spider", "rules", "-r", check=False)
    assert miss.returncode == 2 and "no rule of spider 'rules' matches" in miss.stderr


def test_shell_reads_a_local_file(tmp_path: Path) -> None:
    page = tmp_path / "saved.html"
    page.write_text("<html><head><title>kept</title></head><body><a href='x'>x</a></body></html>", encoding="utf-8")
    out = kubecrawl(tmp_path, "shell", str(page), "-c", "(response.status, response.css('title::text').get())")
    assert ast.literal_eval(out.stdout.strip().splitlines()[-1]) == (200, "kept")


def test_every_template_runs_under_kubecrawl_and_scrapy_alike(scrapy_python: Path, tmp_path: Path) -> None:
    """Each generated spider, pointed at a local page, gives the same items under kubecrawl and, with
    its imports turned back into Scrapy's, under real Scrapy (``scrapy runspider``)."""
    import subprocess

    from .test_feed_spiders import FEEDS

    site = _small_site()
    site.html("/feed.xml", (FEEDS / "naver-blog-euc-kr.rss.xml").read_bytes(), content_type="application/rss+xml")
    site.html("/data.csv", (FEEDS / "debian-releases.csv").read_bytes(), content_type="text/csv")
    starts = {"basic": "/p1", "crawl": "/p1", "xmlfeed": "/feed.xml", "csvfeed": "/data.csv"}
    try:
        for template, start in starts.items():
            name = f"gen_{template}"
            kubecrawl(tmp_path, "genspider", "-t", template, name, "127.0.0.1")
            path = tmp_path / f"{name}.py"
            src = path.read_text(encoding="utf-8").replace('"https://127.0.0.1"', f'"{site.url(start)}"')
            path.write_text(src, encoding="utf-8")
            kubecrawl(tmp_path, "crawl", str(path), "-O", f"{name}-kc.json", "-s", "progress=off")
            back = tmp_path / f"{name}_scrapy.py"
            back.write_text(
                src.replace("import kubecrawl.scrapy as scrapy", "import scrapy").replace("kubecrawl.scrapy", "scrapy"),
                encoding="utf-8",
            )
            proc = subprocess.run(
                [str(scrapy_python.parent / "scrapy"), "runspider", str(back), "-O", f"{name}-scrapy.json"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                env=clean_env(),
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            expected = read_json(tmp_path / f"{name}-scrapy.json")
            assert expected, f"{template}: Scrapy produced no items"
            assert as_multiset(read_json(tmp_path / f"{name}-kc.json")) == as_multiset(expected), template
    finally:
        site.stop()
