"""Decoding: header charset, BOM, meta, detection; GBK/GB2312 as GB18030."""

from __future__ import annotations

import codecs

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubecrawl import Request, Response
from kubecrawl.encoding import _ENCODINGS, decode_body, prescan

ZH = "滚动新闻：中文内容测试，没有乱码"


def test_header_charset_gbk_decodes_as_gb18030() -> None:
    enc, text = decode_body(f"<p>{ZH}</p>".encode("gbk"), "text/html; charset=GBK")
    assert enc == "gb18030" and ZH in text


def test_meta_charset_only() -> None:
    body = f'<html><head><meta charset="gb2312"></head><body>{ZH}</body></html>'.encode("gbk")
    enc, text = decode_body(body, "text/html")
    assert enc == "gb18030" and ZH in text


def test_no_charset_anywhere_is_detected() -> None:
    body = f"<html><body>{ZH * 20}</body></html>".encode("gbk")
    _, text = decode_body(body, None)
    assert ZH in text


def test_bom_wins() -> None:
    _, text = decode_body(b"\xef\xbb\xbf" + ZH.encode(), "text/html; charset=iso-8859-1")
    assert text == ZH


def test_invalid_bytes_never_raise() -> None:
    _, text = decode_body(b"<p>ok \xff\xfe\xfd</p>", "text/html; charset=utf-8")
    assert "ok" in text


def test_response_helpers() -> None:
    body = b'<html><head><title>T</title></head><body><a href="/x?b=1">x</a><a href="y">y</a></body></html>'
    r = Response(
        "http://h/dir/page",
        200,
        httpx.Headers({"content-type": "text/html"}),
        body,
        Request("http://h/dir/page", meta={"m": 1}),
    )
    assert r.css("title::text").get() == "T"
    assert r.xpath("//a/@href").getall() == ["/x?b=1", "y"]
    assert [q.url for q in r.follow_all(css="a")] == ["http://h/x?b=1", "http://h/dir/y"]
    assert r.follow(r.css("a")[1]).url == "http://h/dir/y"
    assert r.meta == {"m": 1} and r.urljoin("../z") == "http://h/z"


# -- the Encoding Standard's rules (every label is covered by tests/unit/test_standards.py) ------
RU = "Привет, мир"


def test_an_unknown_meta_label_is_skipped_and_the_next_one_counts() -> None:
    body = f'<meta charset="bogus"><meta charset="koi8">{RU}'.encode("koi8-r")
    assert decode_body(body, "text/html") == ("koi8-r", body.decode("koi8-r"))


def test_an_unknown_header_label_falls_through_to_the_meta() -> None:
    body = f'<meta charset="windows-1251"><p>{RU}</p>'.encode("cp1251")
    enc, text = decode_body(body, "text/html; charset=x-bogus")
    assert enc == "cp1251" and RU in text


def test_labels_with_colons_and_dots_are_whole_labels() -> None:
    for label in ("iso_8859-1:1987", "ansi_x3.4-1968"):
        enc, text = decode_body(f'<meta charset="{label}">café'.encode("cp1252"), None)
        assert enc == "cp1252" and text.endswith("café"), label


def test_utf16_in_a_meta_means_utf8() -> None:
    enc, text = decode_body(f'<meta charset="utf-16"><p>{ZH}</p>'.encode(), "text/html")
    assert enc == "utf-8" and ZH in text


def test_the_bom_beats_a_header_and_a_meta() -> None:
    body = b"\xff\xfe" + f'<meta charset="koi8-r">{RU}'.encode("utf-16-le")
    enc, text = decode_body(body, "text/html; charset=windows-1252")
    assert enc == "utf-16-le" and text == f'<meta charset="koi8-r">{RU}'


def test_meta_in_a_comment_is_not_a_declaration() -> None:
    body = f'<!-- <meta charset="koi8-r"> --><meta charset="windows-1251">{RU}'.encode("cp1251")
    assert decode_body(body, None)[0] == "cp1251"


def test_http_equiv_content_needs_the_pragma() -> None:
    without = f'<meta content="text/html; charset=koi8-r">{RU}'.encode("koi8-r")
    with_pragma = f'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">{RU}'.encode("koi8-r")
    assert decode_body(with_pragma, None)[0] == "koi8-r"
    assert prescan(without) is None and prescan(with_pragma) == "KOI8-R"


def test_windows_1252_undefined_bytes_are_c1_controls() -> None:
    # the standard's windows-1252 (also what "iso-8859-1" means) decodes every byte
    assert decode_body(b"\x81\x8d\x8f\x90\x9d\x80", "text/html; charset=iso-8859-1")[1] == "\x81\x8d\x8f\x90\x9d€"


def test_a_late_meta_is_still_honoured() -> None:
    # browsers re-decode when the parser meets a <meta> past the prescan's 1024 bytes
    body = b"<html><head><script>" + b"x" * 3000 + f'</script><meta charset="koi8-r"></head>{RU}'.encode("koi8-r")
    assert decode_body(body, None) == ("koi8-r", body.decode("koi8-r"))


def test_undeclared_legacy_bytes_are_detected_as_one_of_the_standards_encodings() -> None:
    allowed = {codecs.lookup(c).name for c, _ in _ENCODINGS.values() if c not in ("replacement", "x-user-defined")}
    for sample, codec in (
        (RU * 30, "cp1251"),
        (RU * 30, "koi8-r"),
        ("Ελληνικά κείμενο " * 30, "iso8859-7"),
        (ZH * 20, "gbk"),
    ):
        enc, _ = decode_body(sample.encode(codec), None)
        assert enc in allowed, (codec, enc)


def _page(body: bytes, url: str = "http://h/dir/page") -> Response:
    return Response(url, 200, httpx.Headers({"content-type": "text/html"}), body, Request(url))


def test_follow_all_resolves_hrefs_as_a_browser() -> None:
    body = (
        b'<a href="/a\tb">1</a><a href="\\x">2</a><a href=" /c/d/.. ">3</a>'
        b'<a href="http://h:80/e">4</a><a href="#top">5</a><a href=" ">6</a>'
        b'<a href="mailto:x@h">7</a><a href="http://h:66000/">8</a>'
    )
    urls = [r.url for r in _page(body).follow_all(css="a")]
    # same-document links are left out; other schemes and rejected URLs go to the engine to count
    assert urls == ["http://h/ab", "http://h/x", "http://h/c/", "http://h/e", "mailto:x@h", "http://h:66000/"]


def _step_over_attributes(buf: bytes, pos: int) -> int | None:
    """The spec's way through a tag: "get an attribute" until there is none; the ">" position + 1."""
    from kubecrawl.encoding import _get_attribute

    while True:
        attr = _get_attribute(buf, pos)
        if attr is None:
            return None
        name, _, pos = attr
        if not name:
            return pos + 1


_tag_chars = st.sampled_from([*"ab=/ \t\n\"'>", "<", "x"])


@settings(max_examples=3000, deadline=None)
@given(st.text(_tag_chars, max_size=24))
def test_skipping_a_tag_in_one_match_is_stepping_through_its_attributes(rest: str) -> None:
    from kubecrawl.encoding import _TAG_REST

    buf = rest.encode()
    m = _TAG_REST.match(buf, 0)
    assert (m.end() if m else None) == _step_over_attributes(buf, 0)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<a title=">"><meta charset="koi8-r">', "KOI8-R"),
        (b'<a title="<meta charset=koi8-r>"><meta charset="windows-1251">', "windows-1251"),
        (b"<!--><meta charset=koi8-r>", "KOI8-R"),  # "<!-->" is a whole comment
        (b"<!-- --!><meta charset=koi8-r> -->", None),
        (b"<? <meta charset=koi8-r> ?><meta charset=windows-1251>", "windows-1251"),  # "<?" ends at the first ">"
        (b'<meta charset="koi8-r', None),  # the input ends inside the value
        (b"<meta charset=koi8-r charset=windows-1251>", "KOI8-R"),  # the first of a repeated attribute
        (b'<meta http-equiv="content-type" content="charset=\'koi8-r\'">', "KOI8-R"),
        (b"<meta/charset=koi8-r>", "KOI8-R"),
        (b"<metacharset=koi8-r>", None),
        (b"<META CHARSET=KOI8-R>", "KOI8-R"),
        (b"<p>" + b"x" * 2000 + b"<meta charset=koi8-r>", "KOI8-R"),  # a late <meta> is honoured
    ],
)
def test_prescan_reads_tags_as_the_html_standard(head: bytes, expected: str | None) -> None:
    assert prescan(head, 16 * 1024) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html; charset=utf-8", "UTF-8"),
        ('text/html;charset="koi8-r"', "KOI8-R"),
        ("text/html; charset=bogus; charset=utf-8", None),  # the first charset parameter counts
        ("text/html; xcharset=koi8-r", None),
        ("text/html; charset=iso_8859-1:1987", "windows-1252"),
        ("text/html", None),
    ],
)
def test_the_header_charset_is_the_mime_types_parameter(content_type: str, expected: str | None) -> None:
    from kubecrawl.encoding import _header_encoding

    assert _header_encoding(content_type) == expected
