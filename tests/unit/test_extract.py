"""Field extractors and post-processing of declarative spiders, on real parsel selectors and JSON."""

from __future__ import annotations

from typing import Any

import pytest
from parsel import Selector

from kubecrawl.extract import ExtractionError, apply_post, field_value, query_links, select_nodes, to_datetime
from kubecrawl.rules import FieldRule, NodeSelector

HTML = """<html><body>
<h1 class="main-title">  新浪 新闻
  标题 </h1>
<span class="date">2026年11月28日 13:05</span>
<div id="article"><p> 第一段。 </p><p></p><p>第二段。</p></div>
<ul><li><a href="/a/1.html">one</a></li><li><a href="b/2.html">two</a></li><li><a>no href</a></li></ul>
<span class="price">￥1,234.50</span><span class="count">1,024 条</span>
</body></html>"""

JSON: dict[str, Any] = {
    "result": {
        "data": [
            {"url": "https://news.example/1.shtml", "title": "甲", "ctime": "1795825200", "tags": ["x", "y"]},
            {"url": "https://news.example/2.shtml", "title": "乙", "ctime": "1795825260000", "tags": []},
        ]
    }
}


def field(**kw: Any) -> FieldRule:
    return FieldRule.model_validate(kw)


@pytest.fixture
def page() -> Selector:
    return Selector(text=HTML, base_url="http://site.test/list/")


def test_css_text_of_an_element_is_its_whole_text(page: Selector) -> None:
    assert field_value(field(css="h1.main-title", post=["normalize_space"]), page) == "新浪 新闻 标题"


def test_css_text_pseudo_element_and_join(page: Selector) -> None:
    rule = field(css="#article p::text", post=["strip", "nonempty", "join:\n"])
    assert field_value(rule, page) == "第一段。\n第二段。"


def test_many_keeps_every_value(page: Selector) -> None:
    assert field_value(field(xpath="//li/a/text()", many=True), page) == ["one", "two", "no href"]
    assert field_value(field(xpath="//li/a/text()"), page) == "one"


def test_missing_value_is_none_unless_default(page: Selector) -> None:
    assert field_value(field(css=".nothing::text"), page) is None
    assert field_value(field(css=".nothing::text", post=["default:n/a"]), page) == "n/a"
    assert field_value(field(css=".nothing::text", many=True), page) == []


def test_regex_refines_a_query_and_numbers_convert(page: Selector) -> None:
    assert field_value(field(css=".price::text", regex=r"([\d,.]+)", post=["float"]), page) == 1234.5
    assert field_value(field(css=".count::text", post=["re:([\\d,]+)", "int"]), page) == 1024


def test_regex_alone_runs_over_the_response_text(page: Selector) -> None:
    text = "var total = 17; var page = 3;"
    assert field_value(field(regex=r"total = (\d+)", post=["int"]), page, text=text) == 17


def test_to_datetime_by_format_epoch_and_iso() -> None:
    assert to_datetime("2026年11月28日 13:05", "%Y年%m月%d日 %H:%M") == "2026-11-28T13:05:00"
    assert to_datetime("1795825200") == "2026-11-28T00:20:00+00:00"
    assert to_datetime("1795825200000") == "2026-11-28T00:20:00+00:00"
    assert to_datetime("2026-11-28 13:05") == "2026-11-28T13:05:00"
    assert to_datetime("not a date", "%Y") is None
    assert to_datetime("") is None


def test_date_field_post_processing(page: Selector) -> None:
    rule = field(css=".date::text", post=["strip", "to_datetime:%Y年%m月%d日 %H:%M"])
    assert field_value(rule, page) == "2026-11-28T13:05:00"


def test_urljoin_uses_the_response_url(page: Selector) -> None:
    rule = field(css="li a::attr(href)", many=True, post=["urljoin"])
    assert field_value(rule, page, base_url="http://site.test/list/") == [
        "http://site.test/a/1.html",
        "http://site.test/list/b/2.html",
    ]


def test_links_of_elements_are_their_href(page: Selector) -> None:
    assert query_links(NodeSelector(css="li a"), page) == ["/a/1.html", "b/2.html"]
    assert query_links(NodeSelector(xpath="//li/a/@href"), page) == ["/a/1.html", "b/2.html"]


def test_jsonpath_on_the_document_and_relative_to_rows() -> None:
    rows = select_nodes(NodeSelector(jsonpath="$.result.data[*]"), JSON)
    assert [r["title"] for r in rows] == ["甲", "乙"]
    assert field_value(field(jsonpath="url"), rows[1]) == "https://news.example/2.shtml"
    assert field_value(field(jsonpath="ctime", post=["to_datetime"]), rows[1]) == "2026-11-28T00:21:00+00:00"
    assert field_value(field(jsonpath="$.result.data[*].title", many=True), JSON) == ["甲", "乙"]
    assert field_value(field(jsonpath="tags[*]", many=True), rows[0]) == ["x", "y"]
    assert query_links(NodeSelector(jsonpath="$.result.data[*].url"), JSON) == [
        "https://news.example/1.shtml",
        "https://news.example/2.shtml",
    ]


def test_filter_expressions_of_jsonpath_ng_ext_work() -> None:
    rule = field(jsonpath="$.result.data[?(@.title == '乙')].url")
    assert field_value(rule, JSON) == "https://news.example/2.shtml"


def test_const_meta_and_response_sources() -> None:
    assert field_value(field(const="sina"), None) == "sina"
    assert field_value(field(meta="ctime"), None, meta={"ctime": "2026"}) == "2026"
    assert field_value(field(meta="absent"), None, meta={}) is None
    assert field_value(field(response="status"), None, response_props={"status": 200}) == 200


def test_query_of_the_wrong_kind_is_an_extraction_error(page: Selector) -> None:
    with pytest.raises(ExtractionError):
        select_nodes(NodeSelector(css="a"), JSON)
    with pytest.raises(ExtractionError):
        select_nodes(NodeSelector(jsonpath="$.a"), page)


@pytest.mark.parametrize(
    ("steps", "values", "expected"),
    [
        (["strip", "lower"], [" A ", "B"], ["a", "b"]),
        (["upper"], ["a"], ["A"]),
        (["unique"], ["a", "b", "a"], ["a", "b"]),
        (["first"], [], []),
        (["last"], ["a", "b"], ["b"]),
        (["join:, "], ["a", "b"], ["a, b"]),
        (["join"], [], []),
        (["int"], ["12", "x", "3.0", "1_000"], [12, 3, 1000]),
        (["float"], ["1.5", "nope"], [1.5]),
        (["sub:\\s+=> "], ["a  \n b"], ["a b"]),
        (["re:(\\d+)-(\\d+)"], ["10-20", "none"], ["10"]),
        (["nonempty"], ["", None, "x"], ["x"]),
    ],
)
def test_post_processing_steps(steps: list[str], values: list[Any], expected: list[Any]) -> None:
    assert apply_post(values, steps) == expected
