"""Scrapy's ``XMLFeedSpider`` and ``CSVFeedSpider``, as Scrapy's documentation describes them.

``XMLFeedSpider``: every ``itertag`` element of the feed is handed to ``parse_node(response, selector)``.
``iterator`` is ``iternodes`` (default: the document is read incrementally and each element becomes a
selector of its own, namespaces declared, so ``selector.xpath("title/text()")`` is relative to it),
``xml`` or ``html`` (the whole document parsed, ``//itertag`` selected). ``itertag`` may carry a prefix
(``n:url``, ``dc:item``): with ``iternodes`` it is resolved from the document's own declarations;
``namespaces`` (``[(prefix, uri), ...]``) are registered on every selector. The XML parser resolves no
entities and fetches nothing (no XXE).

``CSVFeedSpider``: every row is handed to ``parse_row(response, row)`` as a dict keyed by ``headers``
(default: the first row). ``delimiter`` and ``quotechar`` default to the ``csv`` module's. A row whose
length differs from the header's is skipped, logged and counted ``csv_rows_skipped``, as Scrapy skips it.

Both call ``adapt_response(response)`` first and pass each node's or row's results through
``process_results(response, results)``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from lxml import etree

from ..selector import Selector
from . import Spider

if TYPE_CHECKING:
    from ...response import Response

log = logging.getLogger(__name__)


def _results(out: Any) -> Iterable[Any]:
    """A node's or row's callback output as a list (Scrapy's ``iterate_spider_output``)."""
    from ...core.scraper import callback_output

    it = callback_output(out)
    if hasattr(it, "__aiter__"):
        raise TypeError("parse_node/parse_row must not be async generators (their results go through process_results)")
    return it  # type: ignore[return-value]


def iter_xml_nodes(body: bytes, encoding: str, itertag: str) -> Iterator[Selector]:
    """Each ``itertag`` element of an XML document, read incrementally, as a selector of its own."""
    prefix, _, local = itertag.rpartition(":")
    namespace: str | None = None
    tag: str | None = None if prefix else local
    parser_events = etree.iterparse(
        io.BytesIO(body.lstrip()),
        events=("end", "start-ns"),
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
    )
    for event, data in parser_events:
        if event == "start-ns":
            ns_prefix, ns_uri = data  # type: ignore[misc]
            if prefix and namespace is None and ns_prefix == prefix:
                namespace, tag = ns_uri, f"{{{ns_uri}}}{local}"
            continue
        node: Any = data
        if tag is None or node.tag != tag:
            continue
        text = etree.tostring(node, encoding="unicode")
        node.clear()
        sel = Selector(text=text, type="xml")
        if namespace is not None:
            sel.register_namespace(prefix, namespace)
            yield sel.xpath(f"/{prefix}:{local}")[0]
        else:
            yield sel.xpath(f"/{local}")[0]


class XMLFeedSpider(Spider):
    """Scrapy's ``XMLFeedSpider`` (see the module docstring)."""

    iterator: ClassVar[str] = "iternodes"
    itertag: ClassVar[str] = "item"
    namespaces: ClassVar[Sequence[tuple[str, str]]] = ()

    def resolve_callback(self, name: str | None) -> Any:
        if name is None or name == "_parse":  # start URLs: the feed logic, as Scrapy's ``_parse``
            return self._parse
        return super().resolve_callback(name)

    def process_results(self, response: Response, results: Iterable[Any]) -> Iterable[Any]:
        return results

    def adapt_response(self, response: Response) -> Response:
        return response

    def parse_node(self, response: Response, selector: Selector) -> Any:
        if hasattr(self, "parse_item"):  # the older name, as Scrapy still accepts
            return self.parse_item(response, selector)
        raise NotImplementedError(f"{type(self).__name__} must define parse_node(response, selector)")

    def parse_nodes(self, response: Response, nodes: Iterable[Selector]) -> Iterator[Any]:
        for selector in nodes:
            yield from self.process_results(response, list(_results(self.parse_node(response, selector))))

    def _register_namespaces(self, selector: Selector) -> None:
        for prefix, uri in self.namespaces:
            selector.register_namespace(prefix, uri)

    def _iternodes(self, response: Response) -> Iterator[Selector]:
        for node in iter_xml_nodes(response.body, response.encoding, self.itertag):
            self._register_namespaces(node)
            yield node

    def _parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        response = self.adapt_response(response)
        nodes: Iterable[Selector]
        if self.iterator == "iternodes":
            nodes = self._iternodes(response)
        elif self.iterator in ("xml", "html"):
            selector = Selector(text=response.text, type=self.iterator, base_url=response.url)
            self._register_namespaces(selector)
            nodes = selector.xpath(f"//{self.itertag}")
        else:
            from ..exceptions import NotSupported

            raise NotSupported(f"unsupported node iterator {self.iterator!r} (iternodes, xml or html)")
        return self.parse_nodes(response, nodes)


def iter_csv_rows(
    text: str, delimiter: str | None, quotechar: str | None, headers: Sequence[str] | None
) -> Iterator[tuple[int, dict[str, str] | None, int, int]]:
    """``(line number, row or None if skipped, row length, header length)`` for each data row."""
    kwargs: dict[str, Any] = {}
    if delimiter:
        kwargs["delimiter"] = delimiter
    if quotechar:
        kwargs["quotechar"] = quotechar
    reader = csv.reader(io.StringIO(text), **kwargs)
    names = list(headers) if headers else next(reader, None)
    if not names:
        return
    for row in reader:
        if len(row) != len(names):
            yield reader.line_num, None, len(row), len(names)
            continue
        yield reader.line_num, dict(zip(names, row, strict=True)), len(row), len(names)


class CSVFeedSpider(Spider):
    """Scrapy's ``CSVFeedSpider`` (see the module docstring)."""

    delimiter: ClassVar[str | None] = None
    quotechar: ClassVar[str | None] = None
    headers: ClassVar[list[str] | None] = None

    def resolve_callback(self, name: str | None) -> Any:
        if name is None or name == "_parse":
            return self._parse
        return super().resolve_callback(name)

    def process_results(self, response: Response, results: Iterable[Any]) -> Iterable[Any]:
        return results

    def adapt_response(self, response: Response) -> Response:
        return response

    def parse_row(self, response: Response, row: dict[str, str]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define parse_row(response, row)")

    def parse_rows(self, response: Response) -> Iterator[Any]:
        for line, row, length, expected in iter_csv_rows(response.text, self.delimiter, self.quotechar, self.headers):
            if row is None:
                self.logger.warning(
                    "ignoring row %d of %s (length: %d, should be: %d)", line, response.url, length, expected
                )
                crawler = getattr(self, "crawler", None)
                if crawler is not None:
                    crawler.stats.inc_value("csv_rows_skipped")
                continue
            yield from self.process_results(response, list(_results(self.parse_row(response, row))))

    def _parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        return self.parse_rows(self.adapt_response(response))


__all__ = ["CSVFeedSpider", "XMLFeedSpider", "iter_csv_rows", "iter_xml_nodes"]
