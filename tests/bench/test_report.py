"""Medians, completeness and ratios of the local benchmark, and folding a py-spy profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.measure import Measured
from bench.profile import fold, layer_of, stages
from bench.report import summarise
from bench.site import SiteInfo


def _run(name: str, cpu: float, pages: int = 1000, wall: float = 2.0) -> Measured:
    return Measured(
        name=name,
        exit_code=0,
        process_cpu_s=cpu,
        peak_rss_mb=50.0,
        process_wall_s=wall + 0.5,
        crawl_cpu_s=cpu - 0.1,
        crawl_wall_s=wall,
        pages=pages,
        unique=pages,
    )


SITE = SiteInfo(root=Path("/nonexistent"), pages=1000, page_kb=20, links=20, seed=1)


def test_ratios_use_the_median_run_and_the_best_raw_loop() -> None:
    runs = [_run("kubecrawl", c) for c in (2.0, 9.0, 2.5)]
    runs += [_run("raw-aiohttp", 1.6), _run("raw-httpx-aiohttp", 2.5), _run("raw-httpx", 8.0), _run("scrapy", 10.0)]
    s = summarise(runs, SITE, concurrency=64, repeat=3)
    kc = next(r for r in s.rows if r.name == "kubecrawl")
    assert kc.process_cpu_s == 2.5
    assert kc.pages_per_cpu_s == 400.0
    assert s.targets["vs_best_raw"]["baseline"] == "raw-aiohttp"
    assert s.targets["vs_best_raw"]["ratio"] == pytest.approx(400 / 625)
    assert s.targets["vs_best_raw"]["met"] is False
    assert s.targets["vs_scrapy"]["ratio"] == pytest.approx(4.0)
    assert s.targets["vs_scrapy"]["met"] is True
    assert s.ratios["raw-httpx"]["pages_per_cpu_s"] == pytest.approx(3.2)
    assert s.complete


def test_a_contender_that_misses_or_repeats_pages_is_flagged_incomplete() -> None:
    double = _run("scrapy", 10.0, pages=1001)
    double.unique = 1000
    s = summarise([_run("kubecrawl", 2.0), double, _run("raw-aiohttp", 1.0, pages=999)], SITE, 64, 1)
    flags = {r.name: r.complete for r in s.rows}
    assert flags == {"kubecrawl": True, "scrapy": False, "raw-aiohttp": False}
    assert not s.complete


def test_py_spy_stacks_fold_into_self_and_inclusive_time_per_function_and_library() -> None:
    raw = (
        'process 1:"python";main (kubecrawl/cli.py:1);fetch (httpx/_client.py:9) 30\n'
        'process 1:"python";main (kubecrawl/cli.py:1);parse (kc_spider.py:3);xpath (parsel/selector.py:5) 10\n'
        'process 1:"python";main (kubecrawl/cli.py:1) 10\n'
    )
    self_t, incl, layers, total = fold(raw)
    assert total == 50
    assert self_t["fetch (httpx/_client.py:9)"] == 30
    assert incl["main (kubecrawl/cli.py:1)"] == 50
    assert layers == {"httpx": 30, "parsel": 10, "kubecrawl": 10}
    assert layer_of("parse (kc_spider.py:3)") == "bench contender code"
    assert layer_of("urljoin (urllib/parse.py:539)") == "urllib"


def test_samples_are_attributed_to_crawl_stages() -> None:
    run = "main (kubecrawl/cli.py:1);Runner.run (asyncio/runners.py:86);Engine._process (kubecrawl/engine.py:2)"
    raw = (
        "main (kubecrawl/cli.py:1);_find_and_load (<frozen importlib._bootstrap>:1165) 5\n"
        f"{run};Downloader.fetch (kubecrawl/downloader.py:1);Request.__init__ (httpx/_models.py:383) 3\n"
        f"{run};Downloader.fetch (kubecrawl/downloader.py:1);write (asyncio/selector_events.py:1037) 2\n"
        f"{run};parse (kc_spider.py:3);create_root_node (parsel/selector.py:120) 4\n"
        f"{run};parse (kc_spider.py:3);Response.follow_all (kubecrawl/response.py:113) 6\n"
    )
    by_stage, total = stages(raw)
    assert total == 20
    assert by_stage == {
        "start-up: imports, settings, clients, TLS contexts": 5,
        "HTTP: httpx models": 3,
        "HTTP: socket send/receive (kernel, loopback)": 2,
        "HTML parse (lxml)": 4,
        "links: extract, make requests": 6,
    }
