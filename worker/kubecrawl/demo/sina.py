"""A local emulator of Sina's rolling news (新浪滚动新闻), for tests and ``kubecrawl demo --site news``.

It serves, on 127.0.0.1 in a background thread, the same structure as the real site:

* ``/api/roll/get?pageid=153&lid=2509&num=N&page=P`` → ``{"result": {"status": ..., "total": T,
  "data": [{"url", "title", "ctime", "media_name", "intro", "docid"}, ...]}}``, newest first;
* article pages with ``h1.main-title``, ``.date``, ``.source`` and ``#article``;
* ``/robots.txt`` disallowing ``/private/``, a path the roll links to.

The roll changes only when told (:meth:`SinaRollSite.advance` puts new articles on top). Some new
articles are re-publications of older ones under a new URL with the same title and source. Article
pages are a mix of UTF-8 and GBK (some GBK pages name their charset only in ``<meta>``); a few
answer 503 once before 200, a few are 404. Every request is logged for assertions.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import orjson

from ._server import LocalSite

log = logging.getLogger(__name__)

ROLL_PATH = "/api/roll/get"
DISALLOWED_PREFIX = "/private/"
_BEIJING = timezone(timedelta(hours=8))
_EPOCH0 = datetime(2026, 11, 28, 8, 0, tzinfo=_BEIJING)

_SOURCES = ["新华社", "人民网", "中国新闻网", "央视新闻", "澎湃新闻", "北京日报"]
_PLACES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "重庆"]
_TOPICS = [
    "召开经济工作会议",
    "发布最新天气预报",
    "推进城市更新项目",
    "举办科技创新论坛",
    "出台稳就业新措施",
    "开展冬季安全检查",
    "地铁新线路开通运营",
    "加快建设数字政府",
]


@dataclass(frozen=True, slots=True)
class Article:
    """One entry of the roll. ``kind``: ok, gbk, gbk_meta, flaky (503 once), missing (404), private."""

    docid: int
    path: str
    title: str
    source: str
    ctime: int
    body: str
    kind: str
    republished_from: int | None = None

    @property
    def reachable(self) -> bool:
        """A crawler that obeys robots.txt can store it."""
        return self.kind not in ("missing", "private")

    @property
    def date_text(self) -> str:
        return datetime.fromtimestamp(self.ctime, tz=_BEIJING).strftime("%Y年%m月%d日 %H:%M")


def _kind(docid: int) -> str:
    if docid % 13 == 6:
        return "missing"
    if docid % 17 == 8:
        return "private"
    if docid % 11 == 4:
        return "flaky"
    if docid % 5 == 2:
        return "gbk"
    if docid % 5 == 4:
        return "gbk_meta"
    return "ok"


def _title(n: int) -> str:
    return f"{_PLACES[n % len(_PLACES)]}{_TOPICS[(n // len(_PLACES)) % len(_TOPICS)]}（第{n}期）"


class SinaRollSite(LocalSite):
    """The emulator. ``start()`` serves it on a free port; ``stop()`` shuts it down."""

    name = "sina-emulator"

    def __init__(self, initial: int = 20, republish_every: int = 4, auto_advance: int = 0) -> None:
        """``auto_advance``: publish that many new articles whenever page 1 of the roll is fetched
        again (as the real roll does between two visits), so timed rounds see news without a driver."""
        super().__init__()
        self._lock = threading.Lock()
        self.auto_advance = auto_advance
        self._roll_visits = 0
        self._next_id = 1
        self._republished: set[int] = set()
        self.republish_every = republish_every
        self.articles: list[Article] = []  # newest first, as in the roll
        self.round = 0
        self.log: list[tuple[str, str, int]] = []  # (method, path with query, status) in arrival order
        self.hits: Counter[str] = Counter()
        self._add(initial, republish=False)

    # -- content ---------------------------------------------------------------------------------
    def _new_article(self, republish_of: Article | None) -> Article:
        docid = self._next_id
        self._next_id += 1
        day = (_EPOCH0 + timedelta(minutes=docid)).strftime("%Y-%m-%d")
        kind = _kind(docid)
        if republish_of is not None and kind in ("missing", "private"):
            kind = "ok"
        prefix = DISALLOWED_PREFIX.rstrip("/") if kind == "private" else "/news"
        path = f"{prefix}/{day}/doc-ikc{docid:06d}.shtml"
        ctime = int((_EPOCH0 + timedelta(minutes=docid)).timestamp())
        if republish_of is not None:
            return Article(docid, path, republish_of.title, republish_of.source, ctime, republish_of.body, kind,
                           republish_of.docid)  # fmt: skip
        title = _title(docid)
        source = _SOURCES[docid % len(_SOURCES)]
        body = f"{source}{_PLACES[docid % len(_PLACES)]}电　{title}。记者从有关部门获悉，相关工作正在有序推进。"
        return Article(docid, path, title, source, ctime, body, kind)

    def _add(self, n: int, republish: bool) -> list[Article]:
        new: list[Article] = []
        for i in range(n):
            original = None
            if republish and self.republish_every and i % self.republish_every == self.republish_every - 1:
                candidates = [a for a in reversed(self.articles) if a.reachable and a.republished_from is None
                              and a.docid not in self._republished]  # fmt: skip
                if candidates:
                    original = candidates[0]
                    self._republished.add(original.docid)
            new.append(self._new_article(original))
        self.articles[:0] = list(reversed(new))
        return new

    def advance(self, n: int = 8) -> list[Article]:
        """Publish ``n`` new articles on top of the roll (every ``republish_every``-th a re-publication)."""
        with self._lock:
            self.round += 1
            return self._add(n, republish=True)

    def expected_keys(self) -> set[tuple[str, str]]:
        """(title, source) of every article a polite crawler of the whole roll should store."""
        with self._lock:
            return {(a.title, a.source) for a in self.articles if a.reachable}

    def article_by_path(self, path: str) -> Article | None:
        with self._lock:
            return next((a for a in self.articles if a.path == path), None)

    # -- serving ---------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def roll_json(self, num: int, page: int) -> bytes:
        with self._lock:
            rows = self.articles[(page - 1) * num : page * num]
            total = len(self.articles)
        data = [
            {
                "docid": f"ikc{a.docid:06d}",
                "url": self.url(a.path),
                "title": a.title,
                "intro": a.body[:30],
                "media_name": a.source,
                "ctime": str(a.ctime),
            }
            for a in rows
        ]
        doc = {"result": {"status": {"code": 0, "msg": "succ"}, "total": total, "page": page, "data": data}}
        return orjson.dumps(doc)

    def article_page(self, a: Article) -> tuple[dict[str, str], bytes]:
        charset = "gbk" if a.kind in ("gbk", "gbk_meta") else "utf-8"
        meta = f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
        paras = "".join(f"<p>{s}。</p>" for s in a.body.split("。") if s)
        html = (
            f"<!DOCTYPE html><html><head>{meta}<title>{a.title}_新浪新闻</title></head><body>"
            f'<div class="main-content"><h1 class="main-title">{a.title}</h1>'
            f'<div class="date-source"><span class="date">{a.date_text}</span>'
            f'<a class="source" href="#">{a.source}</a></div>'
            f'<div class="article" id="article">{paras}</div></div></body></html>'
        )
        ctype = "text/html" if a.kind == "gbk_meta" else f"text/html; charset={charset}"
        return {"Content-Type": ctype}, html.encode(charset)

    def handle(self, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path = parts.path
        with self._lock:
            self.hits[path] += 1
            hits = self.hits[path]
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, f"User-agent: *\nDisallow: {DISALLOWED_PREFIX}\n".encode()
        if path == ROLL_PATH:
            q = parse_qs(parts.query)
            try:
                num = max(1, min(100, int(q.get("num", ["50"])[0])))
                page = max(1, int(q.get("page", ["1"])[0]))
            except ValueError:
                return 400, {"Content-Type": "application/json"}, b'{"result":{"status":{"code":1}}}'
            if page == 1 and self.auto_advance:
                with self._lock:
                    self._roll_visits += 1
                    visits = self._roll_visits
                if visits > 1:
                    self.advance(self.auto_advance)
            return 200, {"Content-Type": "application/json; charset=utf-8"}, self.roll_json(num, page)
        a = self.article_by_path(path)
        if a is None or a.kind == "missing":
            return 404, {"Content-Type": "text/html"}, b"<html><body><h1>404</h1></body></html>"
        if a.kind == "flaky" and hits == 1:
            return 503, {"Content-Type": "text/html"}, b"<html><body>busy</body></html>"
        headers, body = self.article_page(a)
        return 200, headers, body

    def respond(self, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = self.handle(method, target)
        with self._lock:
            self.log.append((method, target, status))
        return status, headers, body

    # -- what was fetched ------------------------------------------------------------------------
    def fetched(self, prefix: str = "") -> list[tuple[str, int]]:
        """(path with query, status) of every GET whose path starts with ``prefix``."""
        with self._lock:
            return [(p, s) for _m, p, s in self.log if p.startswith(prefix)]


def main(argv: list[str] | None = None) -> int:
    """``python -m kubecrawl.demo.sina [--port N] [--auto-advance N]``: serve the emulator until Ctrl-C."""
    import argparse
    import signal

    p = argparse.ArgumentParser(prog="python -m kubecrawl.demo.sina", description=main.__doc__)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--initial", type=int, default=20, help="articles in the roll at start")
    p.add_argument("--auto-advance", type=int, default=8, help="new articles each time page 1 is fetched again")
    args = p.parse_args(argv)
    site = SinaRollSite(initial=args.initial, auto_advance=args.auto_advance)
    site.start(port=args.port)
    import sys

    sys.stderr.write(
        f"Sina roll emulator on {site.base_url}\n"
        f"  kubecrawl crawl examples/sina_roll.yaml --every 10 -o news.jsonl -s base_url={site.base_url}\n"
    )

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        site.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
