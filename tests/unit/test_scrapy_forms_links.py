"""FormRequest.from_response and LinkExtractor against Scrapy's documented behaviour.

Expectations come from Scrapy's documentation (request-response.rst "FormRequest.from_response",
link-extractors.rst), not from running kubecrawl; tests/scrapy_compat compares whole crawls with Scrapy.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest

from kubecrawl.request import Request
from kubecrawl.response import Response
from kubecrawl.scrapy import FormRequest, JsonRequest
from kubecrawl.scrapy.linkextractors import LinkExtractor


def page(body: str, url: str = "http://www.example.com/a/page.html") -> Response:
    return Response(url, 200, {"content-type": "text/html; charset=utf-8"}, body.encode(), Request(url))


def fields(req: Request) -> list[tuple[str, str]]:
    return parse_qsl(req.body.decode() if req.method == "POST" else urlsplit(req.url).query, keep_blank_values=True)


FORMS = """
<form name="first" id="f1" action="/one" method="post"><input name="a" value="1"><input type="submit" name="s1" value="go1"></form>
<form name="second" id="f2" action="two" method="POST">
  <div class="box"><input name="b" value="2"></div>
  <input type="hidden" name="token" value="t0k">
  <input type="checkbox" name="off" value="x">
  <input type="checkbox" name="on_default" checked>
  <input type="radio" name="r" value="r1"><input type="radio" name="r" value="r2" checked>
  <select name="single"><option value="o1">O1</option><option value="o2">O2</option></select>
  <select name="multi" multiple><option value="m1" selected>M1</option><option value="m2">M2</option><option selected>m3</option></select>
  <textarea name="t">some text</textarea>
  <input type="reset" name="reset" value="no">
  <input type="image" name="img" value="i">
  <input type="submit" name="go" value="Go">
  <button name="btn" value="B">B</button>
  <input value="no name">
</form>
<form id="f3" action="/search"><input name="q" value="kube"></form>
"""


def test_first_form_by_default_and_its_fields_and_first_clickable() -> None:
    req = FormRequest.from_response(page(FORMS))
    assert req.method == "POST" and req.url == "http://www.example.com/one"
    assert fields(req) == [("a", "1"), ("s1", "go1")]
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_form_fields_follow_the_documented_rules() -> None:
    req = FormRequest.from_response(page(FORMS), formname="second")
    assert req.url == "http://www.example.com/a/two"  # a relative action against the page
    # unchecked checkbox and radio left out; a checked checkbox without value is "on"; a select
    # without a selected option gives its first; multiple gives every selected one; reset/image and
    # nameless fields are not sent; the first submit control (<input type=image> counts) is clicked
    assert fields(req) == [
        ("b", "2"),
        ("token", "t0k"),
        ("on_default", "on"),
        ("r", "r2"),
        ("single", "o1"),
        ("multi", "m1"),
        ("multi", "m3"),
        ("t", "some text"),
        ("img", "i"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"formname": "second"},
        {"formid": "f2"},
        {"formnumber": 1},
        {"formxpath": "//div[@class='box']/input"},  # an element inside: its form
        {"formcss": "div.box"},
        {"formname": "nope", "formid": "f2"},  # a name that matches nothing falls through
    ],
)
def test_form_selection(kwargs: dict[str, object]) -> None:
    req = FormRequest.from_response(page(FORMS), **kwargs)  # type: ignore[arg-type]
    assert req.url.endswith("/a/two")


def test_form_selection_errors() -> None:
    with pytest.raises(ValueError, match="No <form> element found in"):
        FormRequest.from_response(page("<p>no form</p>"))
    with pytest.raises(IndexError, match="Form number 7 not found"):  # Scrapy raises IndexError here
        FormRequest.from_response(page(FORMS), formnumber=7)
    with pytest.raises(ValueError, match="No <form> element found with"):
        FormRequest.from_response(page(FORMS + "<p id='x'>p</p>"), formxpath="//p[@id='x']")


def test_formdata_overrides_adds_and_none_removes() -> None:
    req = FormRequest.from_response(page(FORMS), formid="f2", formdata={"b": "new", "token": None, "extra": "e"})
    got = fields(req)
    assert ("b", "new") in got and ("b", "2") not in got
    assert not [k for k, _ in got if k == "token"]
    assert got[-1] == ("extra", "e")


def test_clickdata_and_dont_click() -> None:
    resp = page(FORMS)
    by_attr = fields(FormRequest.from_response(resp, formid="f2", clickdata={"name": "go"}))
    assert ("go", "Go") in by_attr and ("img", "i") not in by_attr
    by_nr = fields(FormRequest.from_response(resp, formid="f2", clickdata={"nr": 2}))  # img, go, btn
    assert ("btn", "B") in by_nr
    none = fields(FormRequest.from_response(resp, formid="f2", dont_click=True))
    assert not {"img", "go", "btn"} & {k for k, _ in none}
    with pytest.raises(ValueError, match="No clickable element matching clickdata"):
        FormRequest.from_response(resp, formid="f2", clickdata={"name": "absent"})
    two = page("<form><input type=submit name=x value=1><input type=submit name=x value=2></form>")
    with pytest.raises(ValueError, match="Multiple elements found"):
        FormRequest.from_response(two, clickdata={"name": "x"})


def test_get_form_sends_the_query_string_and_method_rules() -> None:
    req = FormRequest.from_response(page(FORMS), formid="f3")
    assert req.method == "GET" and req.url == "http://www.example.com/search?q=kube" and not req.body
    as_post = FormRequest.from_response(page(FORMS), formid="f3", method="post")
    assert as_post.method == "POST" and fields(as_post) == [("q", "kube")]
    odd = FormRequest.from_response(page("<form method='PUT' action='/x'><input name=a value=1></form>"))
    assert odd.method == "GET"  # only GET and POST are form methods


def test_no_action_is_the_page_url_and_base_href_counts() -> None:
    assert FormRequest.from_response(page("<form><input name=a value=1></form>")).url.startswith(
        "http://www.example.com/a/page.html"
    )
    based = page("<head><base href='http://other.example/base/'></head><form action='go'></form>")
    assert FormRequest.from_response(based).url == "http://other.example/base/go"
    assert FormRequest.from_response(page(FORMS), formid="f3", url="/elsewhere").url.startswith(
        "http://www.example.com/elsewhere"
    )


def test_formrequest_and_jsonrequest_bodies() -> None:
    post = FormRequest("http://example.com/post", formdata={"a": "1 2", "b": ["x", "y"]})
    assert post.method == "POST" and post.body == b"a=1+2&b=x&b=y"
    get = FormRequest("http://example.com/s?old=1", method="GET", formdata={"q": "é"})
    assert get.url == "http://example.com/s?q=%C3%A9"  # the form data replaces the query
    js = JsonRequest("http://example.com/api", data={"b": 1, "a": [1, 2]})
    assert js.method == "POST" and js.body == b'{"a": [1, 2], "b": 1}'  # keys sorted, as Scrapy does
    assert js.headers["Content-Type"] == "application/json"


LINKS = """
<html><body>
<div id="nav"><a href="/category.php?id=1">Cat 1</a> <a href="subsection.php?id=2">Sub</a></div>
<div class="items">
  <a href="item.php?id=3"> Item <b>three</b> </a>
  <a href="item.php?id=3">again</a>
  <a href="item.php?id=3#frag">fragment</a>
  <a href="http://sub.example.com/item.php?id=4" rel="nofollow">sub</a>
  <a href="http://other.org/item.php?id=5">other</a>
  <a href="/doc.PDF">pdf</a>
  <area href="/map.php">
  <a href="javascript:goToPage('/js.html'); return false">js</a>
  <a href="mailto:someone@example.com">mail</a>
  <img src="/img.png">
</div>
</body></html>
"""


def urls(le: LinkExtractor, body: str = LINKS) -> list[str]:
    return [link.url for link in le.extract_links(page(body, "http://example.com/dir/index.html"))]


def test_default_extractor_a_and_area_unique_extensions_schemes() -> None:
    assert urls(LinkExtractor()) == [
        "http://example.com/category.php?id=1",
        "http://example.com/dir/subsection.php?id=2",
        "http://example.com/dir/item.php?id=3",
        "http://example.com/dir/item.php?id=3#frag",  # unique keeps fragments apart
        "http://sub.example.com/item.php?id=4",
        "http://other.org/item.php?id=5",
        "http://example.com/map.php",
    ]  # .PDF ignored (deny_extensions default, case-insensitive); javascript:, mailto: not http(s)


def test_link_objects_text_and_nofollow() -> None:
    links = LinkExtractor(allow=r"item\.php").extract_links(page(LINKS, "http://example.com/dir/index.html"))
    assert links[0].text == " Item three " and not links[0].nofollow
    assert [lnk.nofollow for lnk in links if "sub." in lnk.url] == [True]


def test_allow_deny_and_domains() -> None:
    assert urls(LinkExtractor(allow=(r"category\.php",), deny=(r"subsection\.php",))) == [
        "http://example.com/category.php?id=1"
    ]
    assert urls(LinkExtractor(allow=r"item\.php", allow_domains=["example.com"])) == [
        "http://example.com/dir/item.php?id=3",
        "http://example.com/dir/item.php?id=3#frag",
        "http://sub.example.com/item.php?id=4",  # subdomains of an allowed domain are allowed
    ]
    assert urls(LinkExtractor(allow=r"item\.php", deny_domains="sub.example.com")) == [
        "http://example.com/dir/item.php?id=3",
        "http://example.com/dir/item.php?id=3#frag",
        "http://other.org/item.php?id=5",
    ]


def test_restrict_xpaths_css_tags_attrs_and_extensions() -> None:
    nav = ["http://example.com/category.php?id=1", "http://example.com/dir/subsection.php?id=2"]
    assert urls(LinkExtractor(restrict_xpaths="//div[@id='nav']")) == nav
    assert urls(LinkExtractor(restrict_css="#nav")) == nav
    assert urls(LinkExtractor(tags="img", attrs="src", deny_extensions=[])) == ["http://example.com/img.png"]
    assert urls(LinkExtractor(tags="img", attrs="src")) == []  # png is an ignored extension
    assert urls(LinkExtractor(deny_extensions=["php"], restrict_css=".items")) == ["http://example.com/doc.PDF"]


def test_process_value_unique_and_canonicalize() -> None:
    def js_target(value: str) -> str | None:  # the documentation's example
        m = re.search(r"javascript:goToPage\('(.*?)'", value)
        return m.group(1) if m else None

    assert urls(LinkExtractor(process_value=js_target)) == ["http://example.com/js.html"]
    assert urls(LinkExtractor(allow=r"id=3", unique=False)) == [
        "http://example.com/dir/item.php?id=3",
        "http://example.com/dir/item.php?id=3",
        "http://example.com/dir/item.php?id=3#frag",
    ]
    assert urls(LinkExtractor(allow=r"id=3", canonicalize=True)) == ["http://example.com/dir/item.php?id=3"]


def test_links_resolve_as_browsers_do() -> None:
    body = "<a href='  /spaced  '>s</a><a href='\\\\back\\slash'>b</a><a href='http://EXAMPLE.com:80/x'>x</a>"
    assert urls(LinkExtractor(), body) == [
        "http://example.com/spaced",
        "http://back/slash",  # a backslash is a slash in http URLs (WHATWG URL Standard)
        "http://example.com/x",
    ]


def test_response_follows_link_objects() -> None:
    resp = page(LINKS, "http://example.com/dir/index.html")
    links = LinkExtractor(allow=r"category").extract_links(resp)
    assert resp.follow(links[0]).url == "http://example.com/category.php?id=1"
    assert [r.url for r in resp.follow_all(links)] == ["http://example.com/category.php?id=1"]
