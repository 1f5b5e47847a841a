"""kubecrawl against the standards' own test data (tests/data/): links and charsets as browsers see them.

The cases are web-platform-tests' urltestdata.json and every label of the Encoding Standard's
label table (from the webencodings package, an independent implementation of it); the selection and the sample pages are bench/standards.py's, which also measures
urllib, w3lib and Scrapy on the same cases (docs/standards.md).
"""

from __future__ import annotations

import httpx
import pytest

from bench.standards import CharsetCase, UrlCase, charset_cases, standard_label_table, url_cases
from kubecrawl import Request, Response
from kubecrawl.encoding import _ENCODINGS, decode_body, lookup_label
from kubecrawl.urls import check_request_url, resolve

URL_CASES = list(url_cases())
CHARSET_CASES = list(charset_cases())


def _id(case: tuple[str, UrlCase]) -> str:
    return f"{case[0]}:{case[1].href!r}"


def test_the_suites_are_the_expected_size() -> None:
    # a truncated or re-filtered data file must not pass silently
    assert sum(s == "relative" for s, _ in URL_CASES) >= 200
    assert sum(s == "absolute" for s, _ in URL_CASES) >= 250
    assert len(CHARSET_CASES) == 2 * 228


@pytest.mark.parametrize("case", URL_CASES, ids=[_id(c) for c in URL_CASES])
def test_an_href_resolves_as_in_a_browser(case: tuple[str, UrlCase]) -> None:
    _, c = case
    page = Response(c.base, 200, {}, b"", Request(c.base))
    if c.expected is None:
        assert resolve(c.base, c.href) is None
        # Response.urljoin hands it back unresolved, and the engine refuses to fetch it
        assert check_request_url(page.urljoin(c.href)) is not None
    else:
        assert resolve(c.base, c.href) == c.expected
        assert page.urljoin(c.href) == c.expected
        if c.expected.startswith(("http://", "https://")):
            assert check_request_url(c.expected) is None


def test_the_label_table_is_the_standards() -> None:
    standard = {name: sorted(labels) for name, labels in standard_label_table().items()}
    assert sum(len(v) for v in standard.values()) == 228  # the standard's table has 228 labels
    ours = {name: sorted(labels.split()) for name, (_, labels) in _ENCODINGS.items()}
    assert ours == standard
    for name, labels in standard.items():
        for label in labels:
            assert lookup_label(f" \t{label.upper()}\n") == name


@pytest.mark.parametrize("case", CHARSET_CASES, ids=[f"{c.how}:{c.label}" for c in CHARSET_CASES])
def test_every_label_decodes_its_sample_page(case: CharsetCase) -> None:
    _, text = decode_body(case.body, case.content_type)
    assert text == case.expected
    r = Response(
        "http://example.com/",
        200,
        httpx.Headers({"content-type": case.content_type}),
        case.body,
        Request("http://example.com/"),
    )
    assert r.text == case.expected
