"""Generate the benchmark's static site: N connected HTML pages of ~K KB with ~L links each.

Page ``i`` lives at ``/p/<i>.html`` and links to page ``i+1`` (so a crawl from page 0 reaches every
page) plus ``links-1`` other pages chosen by a seeded RNG, so the link graph and the bytes are the
same on every machine for the same parameters. A ``site.json`` manifest records the parameters; a
directory whose manifest matches is reused instead of being written again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path

from pydantic import BaseModel

log = logging.getLogger(__name__)

MANIFEST = "site.json"
SITE_FORMAT = 1

_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "crawler queue request response spider lease redis worker operator kubernetes fingerprint item "
    "page link anchor scheduler engine download parse select extract yield commit batch stream shard "
    "latency throughput memory budget backoff retry redirect robots politeness concurrency host slot "
    "cluster pod deployment statefulset secret configmap status phase condition round seed master slave "
    "the of and to in is that for on with as by at from it this be are was or an which not"
).split()


class SiteInfo(BaseModel):
    """What was generated: enough for a benchmark to know the start URL path and the page count."""

    root: Path
    pages: int
    page_kb: int
    links: int
    seed: int
    format: int = SITE_FORMAT
    total_bytes: int = 0

    @property
    def start_path(self) -> str:
        return "/p/0.html"

    def same_shape(self, other: SiteInfo) -> bool:
        keys = ("pages", "page_kb", "links", "seed", "format")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def page_path(i: int) -> str:
    """The URL path of page ``i``."""
    return f"/p/{i}.html"


def page_links(i: int, pages: int, links: int, rng: random.Random) -> list[int]:
    """The pages page ``i`` links to: ``i+1`` first (connectivity), then distinct random others."""
    if pages <= 1:
        return []
    out = [(i + 1) % pages]
    chosen = {i, out[0]}
    want = min(links, pages - 1)
    while len(out) < want:
        j = rng.randrange(pages)
        if j not in chosen:
            chosen.add(j)
            out.append(j)
    return out


def _paragraph_pool(rng: random.Random, count: int = 256) -> list[str]:
    pool = []
    for _ in range(count):
        words = rng.choices(_WORDS, k=rng.randint(60, 140))
        words[0] = words[0].capitalize()
        pool.append("<p>" + " ".join(words) + ".</p>\n")
    return pool


def render_page(i: int, targets: list[int], pool: list[str], rng: random.Random, page_bytes: int) -> bytes:
    """One page: title, heading, a nav list of the links spread through filler paragraphs."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Bench page {i}</title></head>\n<body>\n<h1>Bench page {i}</h1>\n"
    )
    anchors = [f'<li><a href="{page_path(t)}">page {t}</a></li>\n' for t in targets]
    tail = "</body></html>\n"
    size = len(head) + len(tail) + sum(map(len, anchors)) + 20
    body: list[str] = []
    while size < page_bytes:
        para = pool[rng.randrange(len(pool))]
        body.append(para)
        size += len(para)
    # interleave: links appear throughout the page, as in real article/list pages
    parts: list[str] = [head]
    step = max(1, len(body) // max(1, len(anchors)))
    ai = 0
    for k, para in enumerate(body):
        parts.append(para)
        if k % step == 0 and ai < len(anchors):
            parts.append("<ul>" + anchors[ai] + "</ul>\n")
            ai += 1
    if ai < len(anchors):
        parts.append("<ul>" + "".join(anchors[ai:]) + "</ul>\n")
    parts.append(tail)
    return "".join(parts).encode("utf-8")


def read_manifest(root: Path) -> SiteInfo | None:
    try:
        return SiteInfo.model_validate_json((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def generate_site(root: Path, pages: int = 20_000, page_kb: int = 20, links: int = 20, seed: int = 1) -> SiteInfo:
    """Write the site under ``root`` (reused when its manifest matches); returns its :class:`SiteInfo`."""
    if pages < 1:
        raise ValueError("pages must be >= 1")
    root = Path(root).resolve()
    wanted = SiteInfo(root=root, pages=pages, page_kb=page_kb, links=links, seed=seed)
    existing = read_manifest(root)
    if existing is not None and existing.same_shape(wanted):
        log.info("reusing site at %s (%d pages)", root, pages)
        return existing
    if root.exists():
        shutil.rmtree(root)
    (root / "p").mkdir(parents=True)
    rng = random.Random(seed)
    pool = _paragraph_pool(rng)
    total = 0
    for i in range(pages):
        data = render_page(i, page_links(i, pages, links, rng), pool, rng, page_kb * 1024)
        (root / "p" / f"{i}.html").write_bytes(data)
        total += len(data)
    (root / "index.html").write_bytes(b'<html><body><a href="/p/0.html">start</a></body></html>\n')
    # world-readable, so a static server that drops privileges can serve it
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
    info = wanted.model_copy(update={"total_bytes": total})
    (root / MANIFEST).write_text(info.model_dump_json(indent=2))
    log.info("generated %d pages (%.1f MB) at %s", pages, total / 1e6, root)
    return info


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="generate the kubecrawl benchmark site")
    p.add_argument("root", type=Path)
    p.add_argument("--pages", type=int, default=20_000)
    p.add_argument("--page-kb", type=int, default=20)
    p.add_argument("--links", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = generate_site(a.root, a.pages, a.page_kb, a.links, a.seed)
    json.dump(info.model_dump(mode="json"), fp=__import__("sys").stdout, indent=2)


if __name__ == "__main__":
    main()
