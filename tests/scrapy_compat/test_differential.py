"""FormRequest.from_response and LinkExtractor answer like real Scrapy on the same pages.

The pages are the local quotes site's (login form, pager, tag and author links) and small hostile or
unusual documents (upper-case markup, nested forms, fields outside any form, odd whitespace, rel lists,
non-ASCII paths). Each case goes to real Scrapy (``scrapy_oracle.py`` in Scrapy's venv) and to
kubecrawl.scrapy; the answers must be equal, URLs compared in the WHATWG URL Standard's serialisation
(Scrapy keeps ``https://www.zyte.com`` as written, a browser and kubecrawl say ``https://www.zyte.com/``:
the same URL). Where kubecrawl differs on purpose (URLs a browser resolves differently from Scrapy,
``clickdata['nr']`` as documented) there is no case here: docs/scrapy.md lists those.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubecrawl.request import Request
from kubecrawl.response import Response
from kubecrawl.scrapy import FormRequest
from kubecrawl.scrapy.linkextractors import LinkExtractor
from kubecrawl.urls import normalize
from tests.helpers.httpserver import TestHTTPServer

HERE = Path(__file__).resolve().parent

ODD_FORMS = """
<FORM NAME="Upper" ACTION="Go.php" METHOD="Post">
  <INPUT NAME="A" VALUE="1"><INPUT TYPE="CHECKBOX" NAME="c" CHECKED><INPUT TYPE="Submit" NAME="s" VALUE="S">
  <SELECT NAME="empty"></SELECT><select name="none_selected"><option>first text</option><option>second</option></select>
  <textarea name="area">
line one
line two</textarea>
  <input type="text" name="dup" value="1"><input type="text" name="dup" value="2">
  <input name="unicode" value="café ✓">
  <button type="button" name="plain" value="p">not a submit</button>
  <button name="defaultbutton" value="d">submit by default</button>
</FORM>
<form id="outer" action="  /spaced/action  "><input name="o" value="1"></form>
<form action="https://elsewhere.example/x?keep=1" method="get"><input name="q" value="a b&c"></form>
"""

ODD_LINKS = """
<html><head><base href="/base/dir/"></head><body>
<A HREF="Upper.html">Upper</A>
<a href="
   /newline.html
">newline</a>
<a href="rel.html" rel="NOFOLLOW noopener">nofollow upper</a>
<a href="ext.JPG">image</a><a href="ext.tar.gz">archive</a><a href="page.html?x=1&amp;y=2">entity</a>
<a href="/caf\u00e9/men\u00fc.html">unicode path</a>
<a href="">empty</a><a href="#top">fragment only</a><a>no href</a>
<a href="http://Sub.Example.COM/Path">host case</a>
<map><area href="area.html" alt="a"></map>
<a href="ftp://ftp.example.com/file">ftp</a><a href="mailto:x@example.com">mail</a>
<div class="keep"><p><a href="kept.html">kept <i>in</i> div</a></p></div>
</body></html>
"""


def cases(site: TestHTTPServer) -> list[dict[str, Any]]:
    import urllib.request

    def fetch(path: str) -> str:
        with urllib.request.urlopen(site.url(path), timeout=10) as f:  # the real server's bytes
            return f.read().decode("utf-8")

    pages = {p: fetch(p) for p in ["/", "/page/2/", "/page/3/", "/tag/love/", "/author/Albert-Einstein", "/login"]}
    out: list[dict[str, Any]] = []
    for path, html in pages.items():
        for kwargs in [
            {},
            {"restrict_css": "li.next"},
            {"allow": r"/author/"},
            {"allow": r"/tag/", "deny": r"page"},
            {"allow_domains": ["goodreads.com"]},
            {"deny_domains": ["127.0.0.1"]},
            {"restrict_xpaths": "//div[@class='tags']", "unique": False},
            {"canonicalize": True},
            {"tags": ["link", "a"], "attrs": ["href", "rel"]},
        ]:
            out.append({"kind": "links", "html": html, "url": site.url(path), "kwargs": kwargs})
    login = pages["/login"]
    out += [
        {"kind": "form", "html": login, "url": site.url("/login"), "kwargs": kw}
        for kw in [
            {},
            {"formdata": {"username": "u", "password": "p"}},
            {"formdata": {"csrf_token": None}},
            {"formcss": "form", "dont_click": True},
            {"formxpath": "//input[@name='username']"},
            {"formnumber": 1},
        ]
    ]
    odd_url = "http://www.example.com/some/page.html"
    out += [
        {"kind": "form", "html": ODD_FORMS, "url": odd_url, "kwargs": kw}
        for kw in [
            {},
            {"formname": "Upper", "clickdata": {"name": "defaultbutton"}},
            {"formid": "outer"},
            {"formnumber": 2},
            {"formnumber": 2, "formdata": {"q": "x", "new": ["1", "2"]}},
            {"formname": "Upper", "method": "GET"},
            {"formxpath": "//p[@id='nowhere']"},
            {"formname": "missing"},
        ]
    ]
    out += [
        {"kind": "links", "html": ODD_LINKS, "url": odd_url, "kwargs": kw}
        for kw in [
            {},
            {"deny_extensions": []},
            {"tags": ["a", "area"], "attrs": ["href", "alt"], "deny_extensions": []},
            {"restrict_css": "div.keep"},
            {"allow_domains": ["example.com"]},
            {"unique": False, "canonicalize": True},
        ]
    ]
    return out


def kubecrawl_answer(case: dict[str, Any]) -> Any:
    url = case["url"]
    resp = Response(url, 200, {"content-type": "text/html; charset=utf-8"}, case["html"].encode(), Request(url))
    if case["kind"] == "links":
        return [[lnk.url, lnk.text, lnk.nofollow] for lnk in LinkExtractor(**case["kwargs"]).extract_links(resp)]
    try:
        req = FormRequest.from_response(resp, **case["kwargs"])
    except (ValueError, IndexError) as exc:
        return [type(exc).__name__]
    data = req.body.decode() if req.method == "POST" else urlsplit(req.url).query
    return [req.method, req.url.split("?")[0], [list(p) for p in parse_qsl(data, keep_blank_values=True)]]


def as_browser(case: dict[str, Any], answer: Any) -> Any:
    """Scrapy's answer with its URLs in the WHATWG serialisation (the same URLs, written as browsers do)."""
    if case["kind"] == "links":
        return [[normalize(url) or url, text, nofollow] for url, text, nofollow in answer]
    if len(answer) == 3:
        return [answer[0], normalize(answer[1]) or answer[1], answer[2]]
    return answer


def test_forms_and_links_answer_like_scrapy(quotes_site: TestHTTPServer, scrapy_python: Path) -> None:
    todo = cases(quotes_site)
    proc = subprocess.run(
        [str(scrapy_python), str(HERE / "scrapy_oracle.py")],
        input=json.dumps(todo),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = [as_browser(c, a) for c, a in zip(todo, json.loads(proc.stdout), strict=True)]
    assert len(expected) == len(todo) > 60
    mismatches = [
        (c["kind"], c["url"], c["kwargs"], want, got)
        for c, want in zip(todo, expected, strict=True)
        if (got := kubecrawl_answer(c)) != want
    ]
    assert not mismatches, "\n".join(map(repr, mismatches))
