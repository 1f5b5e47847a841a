"""Medians, ratios and the printed table of a local benchmark (plain text and Markdown)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
from typing import Any

from pydantic import BaseModel

from .measure import Measured
from .site import SiteInfo

RAW_NAMES = ("raw-aiohttp", "raw-httpx-aiohttp", "raw-httpx")
TARGET_VS_RAW = 0.8
TARGET_VS_SCRAPY = 2.0


class Row(BaseModel):
    """Medians of one contender's runs."""

    name: str
    runs: int
    complete: bool
    pages: int
    pages_per_s: float
    process_cpu_s: float
    cpu_ms_per_page: float
    pages_per_cpu_s: float
    crawl_cpu_ms_per_page: float | None
    peak_rss_mb: float


class Summary(BaseModel):
    date: str
    command: str = ""
    machine: dict[str, Any] = {}
    site: dict[str, Any]
    concurrency: int
    repeat: int
    rows: list[Row]
    ratios: dict[str, dict[str, float]] = {}
    targets: dict[str, Any] = {}
    runs: list[Measured] = []

    @property
    def complete(self) -> bool:
        return all(r.complete for r in self.rows)


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def row_for(name: str, runs: list[Measured], expected_pages: int) -> Row:
    ok = [m for m in runs if m.ok]
    complete = len(ok) == len(runs) and all(
        m.pages == expected_pages and m.unique == expected_pages and m.errors == 0 for m in ok
    )
    crawl_cpu = [m.crawl_cpu_s * 1000 / m.pages for m in ok if m.crawl_cpu_s is not None and m.pages]
    return Row(
        name=name,
        runs=len(runs),
        complete=complete,
        pages=min((m.pages for m in runs), default=0),
        pages_per_s=_median([m.pages / m.crawl_wall_s for m in ok if m.crawl_wall_s]),
        process_cpu_s=_median([m.process_cpu_s for m in ok]),
        cpu_ms_per_page=_median([m.process_cpu_s * 1000 / m.pages for m in ok if m.pages]),
        pages_per_cpu_s=_median([m.pages / m.process_cpu_s for m in ok if m.process_cpu_s]),
        crawl_cpu_ms_per_page=_median(crawl_cpu) if crawl_cpu else None,
        peak_rss_mb=_median([m.peak_rss_mb for m in ok]),
    )


def summarise(runs: list[Measured], site: SiteInfo, concurrency: int, repeat: int) -> Summary:
    names: list[str] = []
    for m in runs:
        if m.name not in names:
            names.append(m.name)
    rows = [row_for(n, [m for m in runs if m.name == n], site.pages) for n in names]
    by = {r.name: r for r in rows}
    ratios: dict[str, dict[str, float]] = {}
    targets: dict[str, Any] = {}
    kc = by.get("kubecrawl")
    if kc is not None:
        for r in rows:
            if r.name != "kubecrawl":
                ratios[r.name] = {
                    "pages_per_cpu_s": kc.pages_per_cpu_s / r.pages_per_cpu_s,
                    "pages_per_s": kc.pages_per_s / r.pages_per_s,
                }
        raws = [by[n] for n in RAW_NAMES if n in by]
        if raws:
            best = max(raws, key=lambda r: r.pages_per_cpu_s)
            ratio = kc.pages_per_cpu_s / best.pages_per_cpu_s
            targets["vs_best_raw"] = {
                "baseline": best.name,
                "ratio": ratio,
                "target": TARGET_VS_RAW,
                "met": ratio >= TARGET_VS_RAW,
            }
        if "scrapy" in by:
            ratio = kc.pages_per_cpu_s / by["scrapy"].pages_per_cpu_s
            targets["vs_scrapy"] = {
                "baseline": "scrapy",
                "ratio": ratio,
                "target": TARGET_VS_SCRAPY,
                "met": ratio >= TARGET_VS_SCRAPY,
            }
    return Summary(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        site={"pages": site.pages, "page_kb": site.page_kb, "links": site.links, "bytes": site.total_bytes},
        concurrency=concurrency,
        repeat=repeat,
        rows=rows,
        ratios=ratios,
        targets=targets,
        runs=runs,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("kubecrawl", "httpx", "httpx-aiohttp", "aiohttp", "lxml", "parsel"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    try:
        from .venv import venv_python

        res = subprocess.run(
            [str(venv_python()), "-c", "import scrapy; print(scrapy.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if res.returncode == 0:
            out["scrapy"] = res.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


def _git_describe() -> str:
    """The commit the worker code came from, with ``+dirty`` when its files differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "worker/kubecrawl"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return head + ("+dirty" if dirty else "")


def machine_info(server: str) -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    git = _git_describe()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "git": git,
        "python": sys.version.split()[0],
        "os": f"{platform.system()} {platform.release()}",
        "server": server,
        "versions": _versions(),
    }


def markdown_table(s: Summary) -> str:
    head = (
        "| contender | pages crawled | pages/s | CPU s | CPU ms/page | pages per CPU-s | "
        "CPU ms/page (crawl phase) | peak RSS MB |\n|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in s.rows:
        phase = f"{r.crawl_cpu_ms_per_page:.3f}" if r.crawl_cpu_ms_per_page is not None else "–"
        mark = "" if r.complete else " (INCOMPLETE)"
        lines.append(
            f"| {r.name} | {r.pages}{mark} | {r.pages_per_s:,.0f} | {r.process_cpu_s:.2f} | "
            f"{r.cpu_ms_per_page:.3f} | {r.pages_per_cpu_s:,.0f} | {phase} | {r.peak_rss_mb:.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def markdown_ratios(s: Summary) -> str:
    if not s.ratios:
        return ""
    out = ["| kubecrawl vs | pages per CPU-s ratio | pages/s ratio |", "|---|---|---|"]
    for name, r in s.ratios.items():
        out.append(f"| {name} | {r['pages_per_cpu_s']:.2f}× | {r['pages_per_s']:.2f}× |")
    for key, t in s.targets.items():
        out.append(
            f"\nTarget {key}: {t['ratio']:.2f}× against {t['baseline']} (target ≥ {t['target']}×): "
            f"**{'met' if t['met'] else 'MISSED'}**"
        )
    return "\n".join(out) + "\n"


def print_report(s: Summary) -> None:
    """The end-of-run report on stdout (this is the benchmark's output, not library logging)."""
    m = s.machine
    sys.stdout.write(
        f"\nkubecrawl local benchmark, {s.date}\n"
        f"site: {s.site['pages']} pages, ~{s.site['page_kb']} KB, {s.site['links']} links/page, served by "
        f"{m.get('server', '?')}; concurrency {s.concurrency}; median of {s.repeat} run(s)\n"
        f"machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, Python {m.get('python', '?')}\n\n"
    )
    sys.stdout.write(markdown_table(s) + "\n" + markdown_ratios(s))
    for r in s.rows:
        if not r.complete:
            sys.stdout.write(f"\nWARNING: {r.name} did not crawl every page exactly once ({r.pages} pages)\n")
    sys.stdout.flush()
