"""The benchmark site: connected, the promised shape, deterministic, and reused when unchanged."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import lxml.html

from bench.site import generate_site, page_path, read_manifest


def _links(root: Path, i: int) -> list[str]:
    doc = lxml.html.document_fromstring((root / "p" / f"{i}.html").read_bytes())
    return [str(h) for h in doc.xpath("//a/@href")]


def test_every_page_is_reachable_from_the_start_page(tmp_path: Path) -> None:
    info = generate_site(tmp_path / "site", pages=300, page_kb=4, links=20)
    seen = {info.start_path}
    todo = deque([info.start_path])
    while todo:
        path = todo.popleft()
        i = int(path.removeprefix("/p/").removesuffix(".html"))
        for href in _links(info.root, i):
            if href not in seen:
                seen.add(href)
                todo.append(href)
    assert seen == {page_path(i) for i in range(300)}


def test_pages_have_the_requested_links_size_and_title(tmp_path: Path) -> None:
    info = generate_site(tmp_path / "site", pages=120, page_kb=20, links=20)
    for i in (0, 57, 119):
        links = _links(info.root, i)
        assert len(links) == 20
        assert len(set(links)) == 20
        assert page_path(i) not in links
        data = (info.root / "p" / f"{i}.html").read_bytes()
        assert 20 * 1024 <= len(data) < 22 * 1024
        assert f"<title>Bench page {i}</title>".encode() in data
    assert info.total_bytes >= 120 * 20 * 1024


def test_same_parameters_give_the_same_bytes(tmp_path: Path) -> None:
    a = generate_site(tmp_path / "a", pages=50, page_kb=2, links=5, seed=3)
    b = generate_site(tmp_path / "b", pages=50, page_kb=2, links=5, seed=3)
    for i in range(50):
        assert (a.root / "p" / f"{i}.html").read_bytes() == (b.root / "p" / f"{i}.html").read_bytes()


def test_site_is_reused_when_unchanged_and_rewritten_when_the_shape_changes(tmp_path: Path) -> None:
    root = tmp_path / "site"
    generate_site(root, pages=30, page_kb=1, links=5)
    marker = root / "p" / "0.html"
    marker.write_bytes(b"left alone when reused")
    generate_site(root, pages=30, page_kb=1, links=5)
    assert marker.read_bytes() == b"left alone when reused"
    info = generate_site(root, pages=40, page_kb=1, links=5)
    assert info.pages == 40
    assert marker.read_bytes() != b"left alone when reused"
    assert not (root / "p" / "40.html").exists()
    manifest = read_manifest(root)
    assert manifest is not None and manifest.pages == 40
