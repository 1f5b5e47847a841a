"""``python -m bench.standards``: how often link resolution and text decoding agree with browsers.

Measured on the standards' own test data, vendored in ``tests/data/``:

- **links**: web-platform-tests' ``urltestdata.json``, every case a crawler meets: an href on an
  http(s) page (the cases with an http(s) base), and an absolute http(s) href (the cases with no
  base, resolved against a page of the *other* http scheme, which the standard parses the same way);
- **charsets**: every label of the Encoding Standard's label table (as ``webencodings`` has it), declared once in
  ``<meta charset>`` and once in the HTTP ``charset=``, on a sample page in that encoding.

A case agrees when the tool gives the browser's href, or refuses the href where the browser fails
(raises, or for kubecrawl: ``kubecrawl.urls.resolve``, which ``Response.urljoin`` and ``follow`` use,
says the standard rejects it; the engine then refuses the request); for charsets, when the
decoded page equals the page as a browser decodes it. Tools are those importable here:
kubecrawl, ``urllib.parse.urljoin``, w3lib (``safe_url_string(urljoin(...))``, ``html_to_unicode``)
and Scrapy (``response.follow(...).url``, ``response.text``), which lives in a separate venv::

    python -m bench.standards                       # kubecrawl, urllib, w3lib
    /tmp/scrapy-venv/bin/python -m bench.standards  # urllib, w3lib, scrapy (run from the repo root)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
URL_DATA = DATA / "wpt-url" / "urltestdata.json"


def standard_label_table() -> dict[str, list[str]]:
    """The Encoding Standard's label table (encoding name -> labels), from ``webencodings`` (html5lib's
    implementation of the standard's table, installed from PyPI): an oracle independent of ours. Only
    the names' capitalisation is taken from kubecrawl.encoding."""
    from webencodings.labels import LABELS

    from kubecrawl.encoding import _ENCODINGS

    canon = {n.lower(): n for n in _ENCODINGS}
    table: dict[str, list[str]] = {}
    for label, name in LABELS.items():
        table.setdefault(canon.get(name, name), []).append(label)
    return table


_SCHEME = re.compile(r"[\x00-\x20]*([A-Za-z][A-Za-z0-9+.\-]*):")


class UrlCase(NamedTuple):
    base: str
    href: str
    expected: str | None  # None: the standard rejects it


def _scheme(s: str) -> str | None:
    m = _SCHEME.match(s.replace("\t", "").replace("\n", "").replace("\r", ""))
    return m.group(1).lower() if m else None


def url_cases() -> Iterator[tuple[str, UrlCase]]:
    """``(suite, case)`` for every WPT case a crawler meets; suites ``relative`` and ``absolute``."""
    for c in json.loads(URL_DATA.read_text(encoding="utf-8")):
        if not isinstance(c, dict) or "input" not in c:
            continue
        expected = None if c.get("failure") else c["href"]
        base = c.get("base")
        if base is not None and _scheme(base) in ("http", "https"):
            yield "relative", UrlCase(base, c["input"], expected)
        elif base is None and _scheme(c["input"]) in ("http", "https"):
            other = "https" if _scheme(c["input"]) == "http" else "http"
            yield "absolute", UrlCase(f"{other}://page.invalid/dir/page.html", c["input"], expected)


class CharsetCase(NamedTuple):
    label: str
    how: str  # "meta" or "header"
    body: bytes
    content_type: str
    expected: str


_POOL = (
    "café naïve déjà vu €ŠšŽžŒœŸ łśćńźżĄę ČčŘřĚě ğışŞİ ĀāĒēĪī ÆØÅæøå ÐðÞþ ŐőŰű țș Ŵŵ "
    "Ωαβγδεζ Привет мир Київ ґЄ Ђђ שלום עולם مرحبا بالعالم ไทยภาษา ĉĝĥĵŝŭ ķļņ "
    "日本語のテキスト 한국어 텍스트 中文简体测试 繁體中文測試 ｶﾀｶﾅ"
)
_WHATWG_CODECS = {
    "UTF-8": "utf-8",
    "IBM866": "cp866",
    "ISO-8859-8-I": "iso8859-8",
    "KOI8-R": "koi8-r",
    "KOI8-U": "koi8-u",
    "macintosh": "mac-roman",
    "windows-874": "cp874",
    "x-mac-cyrillic": "mac-cyrillic",
    "GBK": "gb18030",
    "gb18030": "gb18030",
    "Big5": "big5hkscs",
    "EUC-JP": "euc-jp",
    "ISO-2022-JP": "iso2022-jp",
    "Shift_JIS": "cp932",
    "EUC-KR": "cp949",
    "UTF-16BE": "utf-16-be",
    "UTF-16LE": "utf-16-le",
}


def _python_codec(name: str) -> str | None:
    if name in _WHATWG_CODECS:
        return _WHATWG_CODECS[name]
    if name.startswith("ISO-8859-"):
        return "iso" + name[4:]
    if name.startswith("windows-"):
        return "cp" + name[8:]
    return None  # replacement, x-user-defined: no Python codec


def _sample(codec: str) -> str:
    """ASCII words and every character of the pool the encoding has (each round-trips)."""
    keep = []
    for ch in dict.fromkeys(_POOL):
        try:
            if ch.isascii() or ch.encode(codec).decode(codec) == ch:
                keep.append(ch)
        except UnicodeError:
            continue
    return "Sample text: " + "".join(keep)


def _page(meta: str, text: str) -> str:
    return f"<!DOCTYPE html><html><head>{meta}<title>t</title></head><body><p>{text}</p></body></html>"


def charset_cases() -> Iterator[CharsetCase]:
    for name, labels in standard_label_table().items():
        codec = _python_codec(name)
        for label in labels:
            meta = f'<meta charset="{label}">'
            if name == "replacement":  # decodes to a single U+FFFD however it is declared
                page = _page(meta, "Sample text").encode("ascii")
                yield CharsetCase(label, "meta", page, "text/html", "\ufffd")
                yield CharsetCase(label, "header", page, f"text/html; charset={label}", "\ufffd")
                continue
            if name == "x-user-defined":
                raw = _page("", "\x80\x81\xa0\xff").encode("latin-1")
                yield CharsetCase(
                    label,
                    "header",
                    raw,
                    f"text/html; charset={label}",
                    raw.decode("latin-1").translate({b: 0xF780 + b - 0x80 for b in range(0x80, 0x100)}),
                )
                # in <meta> it means windows-1252
                page = _page(meta, _sample("cp1252"))
                yield CharsetCase(label, "meta", page.encode("cp1252"), "text/html", page)
                continue
            assert codec is not None, name
            text = _sample(codec)
            if name in ("UTF-16BE", "UTF-16LE"):  # in <meta> it means UTF-8
                page = _page(meta, text)
                yield CharsetCase(label, "meta", page.encode("utf-8"), "text/html", page)
            else:
                page = _page(meta, text)
                yield CharsetCase(label, "meta", page.encode(codec), "text/html", page)
            page = _page("", text)
            yield CharsetCase(label, "header", page.encode(codec), f"text/html; charset={label}", page)


# -- the tools -----------------------------------------------------------------------------------
Resolver = Callable[[str, str], str | None]
Decoder = Callable[[bytes, str], str]


def _guard(fn: Resolver) -> Resolver:
    def run(base: str, href: str) -> str | None:
        try:
            return fn(base, href)
        except Exception:  # a tool that raises refuses the href
            return None

    return run


def tools() -> dict[str, tuple[Resolver | None, Decoder | None]]:
    out: dict[str, tuple[Resolver | None, Decoder | None]] = {}
    try:
        import kubecrawl
        from kubecrawl import Request, Response
        from kubecrawl.encoding import decode_body

        here = Path(kubecrawl.__file__).parent
        if (here / "urls.py").exists():
            # what Response.urljoin / follow use; None: handed to the engine, which refuses it
            from kubecrawl.urls import resolve as kc_resolve
        else:  # kubecrawl before issue 15: nothing was refused

            def kc_resolve(base: str, href: str) -> str | None:
                return Response(base, 200, {}, b"", Request(base)).urljoin(href)

        def kc_decode(body: bytes, ctype: str) -> str:
            return decode_body(body, ctype)[1]

        out[f"kubecrawl ({here.parent})"] = (_guard(kc_resolve), kc_decode)
    except ImportError:
        pass
    from urllib.parse import urljoin

    out["urllib.parse.urljoin"] = (_guard(urljoin), None)
    try:
        from w3lib.encoding import html_to_unicode
        from w3lib.url import safe_url_string

        def w3_decode(body: bytes, ctype: str) -> str:
            return html_to_unicode(ctype, body)[1]

        out["w3lib"] = (_guard(lambda b, h: safe_url_string(urljoin(b, h))), w3_decode)
    except ImportError:
        pass
    try:
        import scrapy
        from scrapy.http import HtmlResponse

        def sc_resolve(base: str, href: str) -> str | None:
            return str(HtmlResponse(url=base, body=b"", encoding="utf-8").follow(href).url)

        def sc_decode(body: bytes, ctype: str) -> str:
            return str(HtmlResponse(url="http://example.com/", body=body, headers={"Content-Type": ctype}).text)

        out[f"Scrapy {scrapy.__version__}"] = (_guard(sc_resolve), sc_decode)
    except ImportError:
        pass
    return out


def measure() -> dict[str, Any]:
    cases = list(url_cases())
    charsets = list(charset_cases())
    results: dict[str, Any] = {}
    for name, (resolve, decode) in tools().items():
        row: dict[str, Any] = {}
        if resolve is not None:
            for suite in ("relative", "absolute"):
                sub = [c for s, c in cases if s == suite]
                ok = [c for c in sub if c.expected is not None]
                bad = [c for c in sub if c.expected is None]
                row[suite] = {
                    "cases": len(sub),
                    "agree": sum(resolve(c.base, c.href) == c.expected for c in sub),
                    "accepted_ok": sum(resolve(c.base, c.href) == c.expected for c in ok),
                    "accepted": len(ok),
                    "rejected_ok": sum(resolve(c.base, c.href) is None for c in bad),
                    "rejected": len(bad),
                }
        if decode is not None:
            for how in ("meta", "header"):
                sub2 = [c for c in charsets if c.how == how]
                wrong = [c.label for c in sub2 if _safe_decode(decode, c) != c.expected]
                row[f"charset via {how}"] = {"cases": len(sub2), "agree": len(sub2) - len(wrong), "wrong": wrong}
        results[name] = row
    return results


def _safe_decode(decode: Decoder, c: CharsetCase) -> str | None:
    try:
        return decode(c.body, c.content_type)
    except Exception:
        return None


def per_page_cpu(site: Path, pages: int = 300, rounds: int = 7) -> dict[str, float]:
    """CPU µs per page of the link path on bench pages, in process (best of ``rounds``): build the
    Response, select the title, ``follow_all`` the links and fingerprint every request."""
    import time

    import httpx

    from kubecrawl import Request, Response

    bodies = [p.read_bytes() for p in sorted((site / "p").glob("*.html"))[:pages]]
    headers = httpx.Headers({"content-type": "text/html; charset=utf-8"})

    def one_round() -> float:
        t0 = time.process_time()
        for i, body in enumerate(bodies):
            url = f"http://127.0.0.1:8080/p/{i}.html"
            r = Response(url, 200, headers, body, Request(url))
            r.css("title::text").get()
            for q in r.follow_all(css="a"):
                _ = q.fingerprint
        return time.process_time() - t0

    one_round()  # warm caches
    best = min(one_round() for _ in range(rounds))
    return {"pages": len(bodies), "cpu_us_per_page": best / len(bodies) * 1e6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.standards", description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--wrong", action="store_true", help="list the labels each tool decodes wrongly")
    p.add_argument(
        "--per-page",
        type=Path,
        metavar="SITE_DIR",
        help="instead: CPU per page of kubecrawl's link path on a generated bench site (bench/.cache/site-*)",
    )
    args = p.parse_args(argv)
    if args.per_page:
        import kubecrawl

        r = per_page_cpu(args.per_page)
        print(
            f"kubecrawl ({Path(kubecrawl.__file__).parent.parent}): {r['cpu_us_per_page']:.1f} µs CPU/page over {r['pages']} pages"
        )
        return 0
    results = measure()
    for name, row in results.items():
        print(name)
        for suite, r in row.items():
            if "accepted" in r:
                print(
                    f"  links {suite:<9} {r['agree']:4d}/{r['cases']:<4d}"
                    f"  (browser's href {r['accepted_ok']}/{r['accepted']}, refused {r['rejected_ok']}/{r['rejected']})"
                )
            else:
                print(f"  {suite:<18} {r['agree']:4d}/{r['cases']:<4d}")
                if args.wrong and r["wrong"]:
                    print("    wrong: " + " ".join(r["wrong"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
