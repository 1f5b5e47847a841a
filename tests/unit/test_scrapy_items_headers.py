"""kubecrawl.scrapy's Item/Field, Headers, Request and Failure behave as Scrapy documents them."""

from __future__ import annotations

import httpx
import pytest
from itemadapter import ItemAdapter
from itemloaders.processors import MapCompose, TakeFirst

import kubecrawl.scrapy as scrapy
from kubecrawl.request import Request as KcRequest
from kubecrawl.response import Response
from kubecrawl.scrapy.failure import Failure
from kubecrawl.scrapy.http import Headers
from kubecrawl.scrapy.loader import ItemLoader


class Product(scrapy.Item):
    name = scrapy.Field(input_processor=MapCompose(str.strip), output_processor=TakeFirst())
    price = scrapy.Field()


class Discounted(Product):
    discount = scrapy.Field()


def test_item_accepts_declared_fields_only() -> None:
    p = Product(name="x")
    p["price"] = 3
    assert dict(p) == {"name": "x", "price": 3}
    with pytest.raises(KeyError, match="does not support field: colour"):
        p["colour"] = "red"
    with pytest.raises(KeyError):
        Product(colour="red")
    with pytest.raises(KeyError):
        p.update(colour="red")
    with pytest.raises(AttributeError, match=r"Use item\['name'\]"):
        p.name  # noqa: B018
    assert set(Discounted.fields) == {"name", "price", "discount"}
    assert Product.fields["name"]["output_processor"] is not None
    assert ItemAdapter(p).field_names() == {"name", "price"}  # type: ignore[comparison-overlap]


def test_item_loader_uses_field_processors() -> None:
    url = "http://example.com/p"
    resp = Response(url, 200, {"content-type": "text/html"}, b"<h1>  Lamp  </h1><h1>Other</h1>", KcRequest(url))
    loader = ItemLoader(item=Product(), response=resp)
    loader.add_css("name", "h1::text")
    loader.add_value("price", 10)
    item = loader.load_item()
    assert isinstance(item, Product) and item["name"] == "Lamp" and item["price"] == [10]


def test_headers_are_a_bytes_mapping_with_getlist() -> None:
    h = Headers(httpx.Headers([("content-type", "text/html"), ("set-cookie", "a=1"), ("set-cookie", "b=2")]))
    assert h["Content-Type"] == b"text/html" and h.get(b"content-type") == b"text/html"
    assert h.getlist("Set-Cookie") == [b"a=1", b"b=2"] and h.get("set-cookie") == b"b=2"
    assert h.get("missing") is None and h.getlist("missing") == [] and "SET-COOKIE" in h
    h["X-Multi"] = ["1", b"2"]
    assert h.getlist("x-multi") == [b"1", b"2"] and list(h)[-1] == b"X-Multi"
    assert h.to_unicode_dict()["Set-Cookie"] == "a=1,b=2"


def test_request_signature_cookies_and_meta_copy() -> None:
    meta = {"k": 1}
    r = scrapy.Request("http://example.com/", None, "post", {b"X": [b"v"]}, "body", {"s": "1", "t": "2"}, meta)
    assert (r.method, r.body, r.headers["X"], r.headers["Cookie"]) == ("POST", b"body", "v", "s=1; t=2")
    r.meta["depth"] = 1
    assert meta == {"k": 1}  # Scrapy copies meta
    assert KcRequest.from_wire(r.to_wire()).headers["Cookie"] == "s=1; t=2"  # plain data on the wire


def test_failure_check_and_message() -> None:
    f = Failure(TimeoutError("slow"), KcRequest("http://example.com/"))
    assert f.check(ValueError, TimeoutError) is TimeoutError and f.check(KeyError) is None
    assert f.check("TimeoutError") == "TimeoutError"
    assert f.getErrorMessage() == "slow" and f.request.url == "http://example.com/"
    with pytest.raises(TimeoutError):
        f.trap(KeyError)
