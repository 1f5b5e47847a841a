"""A Scrapy project (``project/``: scrapy.cfg, settings.py, items, pipelines, spiders/) run by
``scrapy crawl NAME`` under real Scrapy and by ``kubecrawl crawl NAME`` in the same project, after the
mechanical import change (made here, on a copy): the items must be equal as multisets. Also the same
project spider as master + slave over a real redis-server, and ``list``, ``genspider``, ``shell -c``,
``parse``, ``SCRAPY_SETTINGS_MODULE`` and the refusal of unknown settings.py names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.httpserver import TestHTTPServer
from tests.helpers.redis_server import RedisServer, redis_server  # noqa: F401 -- the fixture

from .quotes_site import all_quotes
from .test_ported_spiders import as_multiset, mechanical_port

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"


def copy_project(dest: Path, port: bool) -> Path:
    """The test project at ``dest``; with ``port``, every module mechanically ported to kubecrawl.scrapy."""
    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__", ".scrapy", ".kubecrawl"))
    if port:
        for py in dest.rglob("*.py"):
            py.write_text(mechanical_port(py.read_text(encoding="utf-8")), encoding="utf-8")
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECRAWL_", "SCRAPY_"))}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def kubecrawl(
    cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "kubecrawl.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env or clean_env(),
    )
    if check:
        assert proc.returncode == 0, f"kubecrawl {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def scrapy(py: Path, cwd: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(py.parent / "scrapy"), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=clean_env()
    )
    assert proc.returncode == 0, f"scrapy {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-4000:]}"


def read_json(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def expected_quotes(tag: str | None = None) -> list[dict[str, Any]]:
    return [
        {**q, "tag_count": len(q["tags"])} for q in all_quotes() if tag is None or tag in q["tags"]
    ]  # the project's TagCountPipeline adds tag_count


SPIDER_CASES = [("quotes", []), ("quotes", ["-a", "tag=love"]), ("authors", [])]


@pytest.mark.parametrize(("spider", "args"), SPIDER_CASES, ids=["quotes", "quotes-tag", "authors"])
def test_project_crawl_gives_scrapys_items(
    spider: str, args: list[str], quotes_site: TestHTTPServer, scrapy_python: Path, tmp_path: Path
) -> None:
    base = ["-a", f"base={quotes_site.url('/').rstrip('/')}", *args]
    sp = copy_project(tmp_path / "scrapy", port=False)
    scrapy(scrapy_python, sp, "crawl", spider, *base, "-O", "out.json")
    expected = read_json(sp / "out.json")
    kc = copy_project(tmp_path / "kc", port=True)
    kubecrawl(kc, "crawl", spider, *base, "-O", "out.json", "-s", "progress=off")
    got = read_json(kc / "out.json")
    assert expected, "Scrapy produced no items"
    assert as_multiset(got) == as_multiset(expected)
    if spider == "quotes":
        tag = args[1].split("=", 1)[1] if args else None
        assert as_multiset(got) == as_multiset(expected_quotes(tag))


def test_project_spider_runs_as_master_and_slave(
    quotes_site: TestHTTPServer,
    redis_server: RedisServer,  # noqa: F811 -- the fixture imported above
    tmp_path: Path,
) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    common = ["-a", f"base={quotes_site.url('/').rstrip('/')}", "--redis-url", redis_server.url, "--crawl", "proj"]
    kubecrawl(kc, "crawl", "quotes", "--role", "master", *common)
    kubecrawl(kc, "crawl", "quotes", "--role", "slave", "--exit-when-idle", *common, "-s", "progress=off")
    kubecrawl(kc, "export", "--redis-url", redis_server.url, "--crawl", "proj", "-o", "out.jsonl")
    got = [json.loads(line) for line in (kc / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert as_multiset(got) == as_multiset(expected_quotes())


def test_list_prints_the_projects_spiders(tmp_path: Path) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    out = kubecrawl(kc / "quotesproject" / "spiders", "list").stdout  # found walking up, as Scrapy does
    assert out.splitlines() == ["authors", "quotes"]


def test_outside_a_project_a_name_is_explained(tmp_path: Path) -> None:
    proc = kubecrawl(tmp_path, "crawl", "quotes", check=False)
    assert proc.returncode != 0
    assert "not inside a Scrapy project" in proc.stderr


def test_unknown_settings_py_names_are_refused_together(tmp_path: Path) -> None:
    kc = copy_project(tmp_path / "kc", port=True)
    settings = kc / "quotesproject" / "settings.py"
    settings.write_text(settings.read_text() + "\nCONCURENT_REQUESTS = 3\nHTTPCACHE_ENABLD = True\n", encoding="utf-8")
    proc = kubecrawl(kc, "crawl", "quotes", "-s", "DOWNLOD_DELAY=1", check=False)
    assert proc.returncode == 2
    err = proc.stderr
    assert "3 unknown setting(s)" in err
    assert "'CONCURENT_REQUESTS' (from project settings.py); did you mean 'CONCURRENT_REQUESTS'" in err
    assert "'HTTPCACHE_ENABLD' (from project settings.py); did you mean 'HTTPCACHE_ENABLED'" in err
    assert "'DOWNLOD_DELAY' (from command line); did you mean 'DOWNLOAD_DELAY'" in err


def test_settings_module_from_the_environment(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    """SCRAPY_SETTINGS_MODULE overrides scrapy.cfg: here a module without the item pipeline."""
    kc = copy_project(tmp_path / "kc", port=True)
    (kc / "quotesproject" / "settings_bare.py").write_text(
        'SPIDER_MODULES = ["quotesproject.spiders"]\nROBOTSTXT_OBEY = False\n', encoding="utf-8"
    )
    env = clean_env(SCRAPY_SETTINGS_MODULE="quotesproject.settings_bare")
    base = f"base={quotes_site.url('/').rstrip('/')}"
    kubecrawl(kc, "crawl", "quotes", "-a", base, "-O", "out.json", "-s", "progress=off", env=env)
    got = read_json(kc / "out.json")
    assert as_multiset(got) == as_multiset(all_quotes())  # no tag_count: the pipeline is not configured
    assert "/robots.txt" not in [p for _, p in quotes_site.log]


def test_project_feeds_and_o_replacing_them(quotes_site: TestHTTPServer, tmp_path: Path) -> None:
    """FEEDS in settings.py is the project's feed; -O replaces it, as in scrapy crawl."""
    kc = copy_project(tmp_path / "kc", port=True)
    settings = kc / "quotesproject" / "settings.py"
    settings.write_text(
        settings.read_text() + '\nFEEDS = {"feed-%(name)s.jsonl": {"format": "jsonlines", "encoding": "utf8"}}\n'
        'LOG_FILE = "crawl.log"\n',
        encoding="utf-8",
    )
    base = f"base={quotes_site.url('/').rstrip('/')}"
    kubecrawl(kc, "crawl", "quotes", "-a", base, "-s", "progress=off", "-s", "LOG_LEVEL=INFO")
    lines = (kc / "feed-quotes.jsonl").read_text(encoding="utf-8").splitlines()
    assert as_multiset([json.loads(x) for x in lines]) == as_multiset(expected_quotes())
    assert "kubecrawl" in (kc / "crawl.log").read_text(encoding="utf-8")  # the log went to LOG_FILE
    (kc / "feed-quotes.jsonl").unlink()
    kubecrawl(kc, "crawl", "quotes", "-a", base, "-O", "only.json", "-s", "progress=off")
    assert not (kc / "feed-quotes.jsonl").exists()
    assert as_multiset(read_json(kc / "only.json")) == as_multiset(expected_quotes())
