"""The rolling-news case (新浪滚动新闻) against the local Sina emulator, locally and round after round.

The roll's URL never changes; its content does. After every round each new reachable article must be
stored exactly once, re-publications (new URL, same title and source) not again, the roll fetched
every round, each article page once, Chinese text intact and the robots.txt-disallowed path untouched.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from kubecrawl.declarative import load_declarative_spider
from kubecrawl.demo.sina import DISALLOWED_PREFIX, ROLL_PATH, SinaRollSite
from kubecrawl.loader import load_spider_class
from tests.helpers.crawl import crawl

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sina_roll.yaml"
ROLL_PAGES = 3  # examples/sina_roll.yaml fetches pages 1..3 of the roll every round


@pytest.fixture
def sina() -> Iterator[SinaRollSite]:
    site = SinaRollSite().start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def sina_auto() -> Iterator[SinaRollSite]:
    """A roll that publishes 8 new articles whenever its first page is fetched again."""
    site = SinaRollSite(auto_advance=8).start()
    try:
        yield site
    finally:
        site.stop()


def read_items(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def roll_fetches(site: SinaRollSite) -> int:
    return sum(1 for p, _ in site.fetched(ROLL_PATH))


def article_answers(site: SinaRollSite) -> Counter[str]:
    """Article paths by how often they were answered with anything but a 5xx (a 503 is retried)."""
    return Counter(urlsplit(p).path for p, s in site.fetched() if s < 500 and p.endswith(".shtml"))


def assert_round_is_right(site: SinaRollSite, items: list[dict[str, Any]], rounds: int) -> None:
    keys = [(i["title"], i["source"]) for i in items]
    assert len(keys) == len(set(keys)), "an article was stored twice"
    assert set(keys) == site.expected_keys()
    assert roll_fetches(site) == rounds * ROLL_PAGES
    answers = article_answers(site)
    assert max(answers.values()) == 1, "an article page was fetched twice"
    assert not site.fetched(DISALLOWED_PREFIX), "the robots.txt-disallowed path was fetched"
    for item in items:
        art = site.article_by_path(urlsplit(item["url"]).path)
        assert art is not None
        assert (item["title"], item["source"]) == (art.title, art.source)
        assert item["date"] is not None and item["ctime"] is not None
        assert "\ufffd" not in item["body"] and art.title in item["body"] and "有序推进" in item["body"]


def assert_the_hard_cases_happened(site: SinaRollSite, items: list[dict[str, Any]]) -> None:
    """Guard against a vacuous pass: the emulator's tricky articles were really in the crawl."""
    fetched = set(article_answers(site))
    kinds = Counter(a.kind for a in site.articles if a.path in fetched)
    assert kinds["gbk"] and kinds["gbk_meta"] and kinds["flaky"] and kinds["missing"]
    assert any(a.kind == "private" for a in site.articles)
    republished = [a for a in site.articles if a.republished_from is not None and a.path in fetched]
    assert republished, "no re-publication was crawled"
    stored_urls = {urlsplit(i["url"]).path for i in items}
    originals = {a.docid: a for a in site.articles}
    for rep in republished:
        both = {rep.path, originals[rep.republished_from].path} & stored_urls
        assert len(both) == 1


@pytest.mark.parametrize("example", ["sina_roll.yaml", "sina_roll.py"])
async def test_rounds_with_state_dir_store_each_new_article_once(
    sina: SinaRollSite, tmp_path: Path, example: str
) -> None:
    spider_cls = load_spider_class(str(ROOT / "examples" / example))
    out, state = tmp_path / "news.jsonl", tmp_path / "state"
    previous = 0
    for rnd in range(1, 5):
        stats, _ = await crawl(spider_cls(), output=out, state_dir=state, base_url=sina.base_url)
        items = read_items(out)
        assert_round_is_right(sina, items, rnd)
        assert stats["items"] == len(items) - previous
        previous = len(items)
        sina.advance(8)
    assert_the_hard_cases_happened(sina, items)


async def test_rounds_on_a_timer_in_one_process(sina_auto: SinaRollSite, tmp_path: Path) -> None:
    spider_cls = load_declarative_spider(EXAMPLE)
    out = tmp_path / "news.jsonl"
    _, proc = await crawl(spider_cls(), output=out, every=0.05, max_rounds=3, base_url=sina_auto.base_url)
    assert proc.rounds_run == 3
    items = read_items(out)
    assert_round_is_right(sina_auto, items, 3)
    assert_the_hard_cases_happened(sina_auto, items)


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "kubecrawl.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_every_keeps_the_news_file_up_to_date_across_restarts(sina_auto: SinaRollSite, tmp_path: Path) -> None:
    out, state = tmp_path / "news.jsonl", tmp_path / "state"
    common = ["crawl", str(EXAMPLE), "-o", str(out), "--state-dir", str(state), "-s", "progress=off"]
    first = run_cli(*common, "--every", "0.05", "--max-rounds", "2", "-s", f"base_url={sina_auto.base_url}")
    assert first.returncode == 0, first.stderr
    assert_round_is_right(sina_auto, read_items(out), 2)
    # a restarted process continues the same crawl: the base URL now comes from the environment
    second = run_cli(*common, "--max-rounds", "1", env_extra={"KUBECRAWL_BASE_URL": sina_auto.base_url})
    assert second.returncode == 0, second.stderr
    items = read_items(out)
    assert_round_is_right(sina_auto, items, 3)
    assert_the_hard_cases_happened(sina_auto, items)


@pytest.mark.slow
def test_distributed_rounds_master_per_round_and_slaves(sina: SinaRollSite, redis_server: Any, tmp_path: Path) -> None:
    """The same YAML drives a distributed crawl: a master seeds each round, two slaves drain it."""
    from tests.integration.distributed_cluster import Cluster

    cluster = Cluster(tmp_path, EXAMPLE, redis_server.url, "sina-roll", {"base_url": sina.base_url})
    try:
        for rnd in range(1, 4):
            cluster.start(f"master-{rnd}", "master")
            assert cluster.wait_all(120) == {**{f"master-{r}": 0 for r in range(1, rnd + 1)},
                                             **{f"slave-{i}": 0 for i in range(2) if rnd > 1}}  # fmt: skip
            st = cluster.status()
            assert st.seeded_round == rnd and not st.seeding
            cluster.start_slaves(2)
            codes = cluster.wait_all(300)
            assert set(codes.values()) == {0}, cluster.logs_tail()
            items = cluster.items()
            assert_round_is_right(sina, items, rnd)
            sina.advance(8)
        assert_the_hard_cases_happened(sina, items)
    finally:
        cluster.stop_all()


def test_demo_news_second_round_stores_only_new_articles(tmp_path: Path) -> None:
    out = tmp_path / "news.jsonl"
    res = run_cli("demo", "--site", "news", "-o", str(out))
    assert res.returncode == 0, res.stderr
    items = read_items(out)
    keys = [(i["title"], i["source"]) for i in items]
    assert len(keys) == len(set(keys))
    reported = [int(line.split(": ", 1)[1].split()[0]) for line in res.stderr.splitlines() if line.startswith("round ")]
    assert len(reported) == 2 and sum(reported) == len(items)
    assert 0 < reported[1] < reported[0]


@pytest.mark.slow
def test_distributed_master_with_every_keeps_the_roll_up_to_date(
    sina_auto: SinaRollSite, redis_server: Any, tmp_path: Path
) -> None:
    """`kubecrawl crawl sina_roll.yaml --role master --every ...` seeds round after round while long-running
    slaves crawl; the roll publishes news between visits."""
    from tests.integration.distributed_cluster import Cluster

    settings = {"base_url": sina_auto.base_url}
    cluster = Cluster(tmp_path, EXAMPLE, redis_server.url, "sina-roll", settings)
    master = Cluster(tmp_path, EXAMPLE, redis_server.url, "sina-roll", {**settings, "every": 0.5, "max_rounds": 3})
    try:
        for i in range(2):
            cluster.start(f"slave-{i}", "slave", f"slave-{i}", exit_when_idle=False)
        master.start("master", "master")
        assert master.procs["master"].wait(timeout=300) == 0, master.logs_tail()
        cluster.wait_for(lambda st: st.seeded_round == 3 and st.complete, 300, "round 3 complete")
        items = cluster.items()
        assert_round_is_right(sina_auto, items, 3)
        assert_the_hard_cases_happened(sina_auto, items)
        for i in range(2):
            cluster.procs[f"slave-{i}"].terminate()
        assert [cluster.procs[f"slave-{i}"].wait(timeout=60) for i in range(2)] == [0, 0]
    finally:
        master.stop_all()
        cluster.stop_all()
