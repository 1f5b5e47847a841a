"""Scrapy's ``Link``: what a link extractor returns."""

from __future__ import annotations


class Link:
    __slots__ = ("fragment", "nofollow", "text", "url")

    def __init__(self, url: str, text: str = "", fragment: str = "", nofollow: bool = False) -> None:
        if not isinstance(url, str):
            raise TypeError(f"Link urls must be str objects, got {type(url).__name__}")
        self.url = url
        self.text = text
        self.fragment = fragment
        self.nofollow = nofollow

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Link):
            return NotImplemented
        return (self.url, self.text, self.fragment, self.nofollow) == (
            other.url,
            other.text,
            other.fragment,
            other.nofollow,
        )

    def __hash__(self) -> int:
        return hash(self.url) ^ hash(self.text) ^ hash(self.fragment) ^ hash(self.nofollow)

    def __repr__(self) -> str:
        return f"Link(url={self.url!r}, text={self.text!r}, fragment={self.fragment!r}, nofollow={self.nofollow!r})"
