"""Answer form and link cases with real Scrapy (executed by Scrapy's Python; imports nothing of ours).

Reads a JSON list of cases on stdin, writes a JSON list of answers on stdout; see test_differential.py.
"""

from __future__ import annotations

import json
import sys
import warnings
from urllib.parse import parse_qsl, urlsplit


def answer(case: dict) -> object:
    from scrapy.http import FormRequest, HtmlResponse
    from scrapy.linkextractors import LinkExtractor

    resp = HtmlResponse(case["url"], body=case["html"].encode("utf-8"), encoding="utf-8")
    if case["kind"] == "links":
        return [[lnk.url, lnk.text, lnk.nofollow] for lnk in LinkExtractor(**case["kwargs"]).extract_links(resp)]
    try:
        req = FormRequest.from_response(resp, **case["kwargs"])
    except (ValueError, IndexError) as exc:
        return [type(exc).__name__]
    data = req.body.decode() if req.method == "POST" else urlsplit(req.url).query
    return [req.method, req.url.split("?")[0], parse_qsl(data, keep_blank_values=True)]


def main() -> int:
    warnings.simplefilter("ignore")
    cases = json.load(sys.stdin)
    json.dump([answer(c) for c in cases], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
