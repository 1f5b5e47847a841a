"""Decoding: header charset, BOM, meta, detection; GBK/GB2312 as GB18030."""

from __future__ import annotations

import httpx

from kubecrawl import Request, Response
from kubecrawl.encoding import decode_body

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
