"""A small bookshop (shaped like books.toscrape.com) served on 127.0.0.1 for ``kubecrawl demo``.

Fifty books on five catalogue pages with "next" links; every book has its own page with title,
price, star rating, availability and description. Generated deterministically, no files needed.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from ._server import LocalSite, Reply

log = logging.getLogger(__name__)

PER_PAGE = 10
_WORDS = ["Quiet", "Harbour", "Lantern", "Orchard", "Meridian", "Paper", "Winter", "Atlas", "Silent", "River",
          "Glass", "Compass", "Hollow", "Summer", "Cipher", "Garden", "Northern", "Ember"]  # fmt: skip
_RATINGS = ["One", "Two", "Three", "Four", "Five"]


def book(n: int) -> dict[str, Any]:
    """The data of book ``n`` (1-based), as the site shows it."""
    title = f"The {_WORDS[n % len(_WORDS)]} {_WORDS[(n * 7) % len(_WORDS)]} ({n})"
    return {
        "title": title,
        "price": round(10 + (n * 37 % 5000) / 100, 2),
        "rating": _RATINGS[n % 5],
        "in_stock": n % 6 != 0,
        "description": f"Book {n} of the kubecrawl demo shop: a story about {_WORDS[(n * 5) % len(_WORDS)].lower()}s.",
    }


class BooksSite(LocalSite):
    """``start()`` serves the shop on a free port; ``url(path)``; ``stop()``."""

    name = "books-site"

    def __init__(self, books: int = 50) -> None:
        super().__init__()
        self.books = books

    @property
    def pages(self) -> int:
        return (self.books + PER_PAGE - 1) // PER_PAGE

    def catalogue(self, page: int) -> str:
        first = (page - 1) * PER_PAGE + 1
        pods = []
        for n in range(first, min(first + PER_PAGE, self.books + 1)):
            b = book(n)
            t = html.escape(b["title"])
            pods.append(
                f'<li><article class="product_pod"><p class="star-rating {b["rating"]}"></p>'
                f'<h3><a href="book-{n}.html" title="{t}">{t}</a></h3>'
                f'<div class="product_price"><p class="price_color">£{b["price"]:.2f}</p></div></article></li>'
            )
        nxt = f'<li class="next"><a href="page-{page + 1}.html">next</a></li>' if page < self.pages else ""
        return (
            f"<!DOCTYPE html><html><head><title>All products | Page {page}</title></head><body>"
            f'<ol class="row">{"".join(pods)}</ol><ul class="pager">{nxt}</ul></body></html>'
        )

    def book_page(self, n: int) -> str:
        b = book(n)
        t = html.escape(b["title"])
        stock = "In stock" if b["in_stock"] else "Out of stock"
        return (
            f"<!DOCTYPE html><html><head><title>{t}</title></head><body>"
            f'<div class="product_main"><h1>{t}</h1><p class="price_color">£{b["price"]:.2f}</p>'
            f'<p class="instock availability">{stock}</p><p class="star-rating {b["rating"]}"></p></div>'
            f'<div id="product_description"><h2>Product Description</h2></div><p>{html.escape(b["description"])}</p>'
            "</body></html>"
        )

    def handle(self, path: str) -> tuple[int, str]:
        if path in ("/", "/index.html"):
            return 200, self.catalogue(1).replace('href="book-', 'href="catalogue/book-').replace(
                'href="page-', 'href="catalogue/page-'
            )
        if path == "/robots.txt":
            return 200, "User-agent: *\nAllow: /\n"
        if path.startswith("/catalogue/"):
            name = path.rsplit("/", 1)[1]
            for prefix, limit, render in (("page-", self.pages, self.catalogue), ("book-", self.books, self.book_page)):
                num = name.removeprefix(prefix).removesuffix(".html")
                if name.startswith(prefix) and num.isdigit() and 1 <= int(num) <= limit:
                    return 200, render(int(num))
        return 404, "<html><body>not found</body></html>"

    def respond(self, method: str, target: str) -> Reply:
        path = target.split("?", 1)[0]
        status, text = self.handle(path)
        ctype = "text/plain" if path == "/robots.txt" else "text/html; charset=utf-8"
        return status, {"Content-Type": ctype}, text.encode("utf-8")
