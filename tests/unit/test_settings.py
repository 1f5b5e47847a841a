"""One typed settings object; precedence CLI > env > file > spider > defaults; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubecrawl.errors import ConfigurationError
from kubecrawl.settings import Settings, build_settings, parse_kv


def test_defaults() -> None:
    s = build_settings(environ={})
    assert s == Settings()
    assert s.role == "none" and s.obey_robots is True


def test_precedence(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("concurrency: 3\ndownload_delay: 1.5\nuser_agent: from-file\nobey_robots: false\n")
    s = build_settings(
        cli={"settings_file": f, **parse_kv(["CONCURRENCY=9"])},
        spider_settings={"concurrency": 1, "download_delay": 0.1, "user_agent": "spider", "max_retries": 7},
        environ={"KUBECRAWL_USER_AGENT": "from-env", "KUBECRAWL_CONCURRENCY": "5"},
    )
    assert s.concurrency == 9  # CLI
    assert s.user_agent == "from-env"  # env over file
    assert s.download_delay == 1.5  # file over spider
    assert s.max_retries == 7  # spider over default
    assert s.obey_robots is False


def test_lists_from_env_and_cli() -> None:
    s = build_settings(
        cli=parse_kv(["item_key=[title, source]"]), environ={"KUBECRAWL_SSRF_ALLOW": "10.0.0.0/8, internal.svc"}
    )
    assert s.item_key == ["title", "source"]
    assert s.ssrf_allow == ["10.0.0.0/8", "internal.svc"]


@pytest.mark.parametrize(
    ("cli", "needle"),
    [
        ({"concurrency": "0"}, "concurrency"),
        ({"role": "boss"}, "role"),
        ({"cron": "every day"}, "cron"),
        ({"nonsense": "1"}, "unknown setting 'nonsense'"),
        ({"crawl": "bad name!"}, "crawl"),
        # issue 20: values that make a crawl fetch everything many times or never
        ({"lease_seconds": "0.0001"}, "lease_seconds"),
        ({"download_delay": "1e9"}, "download_delay"),
    ],
)
def test_invalid_settings_fail_with_the_key_named(cli: dict, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        build_settings(cli=cli, environ={})


def test_secret_password_is_not_printed() -> None:
    s = build_settings(environ={"KUBECRAWL_REDIS_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s) and s.redis_password_value == "hunter2"


def test_scrapy_names_are_aliases_in_every_source(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("DOWNLOAD_DELAY: 0.5\n")
    s = build_settings(
        cli={"settings_file": f, **parse_kv(["CONCURRENT_REQUESTS=4", "DEPTH_LIMIT=3"])},
        spider_settings={
            "ROBOTSTXT_OBEY": False,
            "USER_AGENT": "ua/1",
            "ITEM_PIPELINES": {"p.Later": 800, "p.Off": None, "p.First": 100},
            "CLOSESPIDER_PAGECOUNT": 0,  # Scrapy's 0: no limit
            "BOT_NAME": "mybot",  # a Scrapy project setting without effect: kept, readable
        },
        environ={"KUBECRAWL_RETRY_TIMES": "7"},
    )
    assert (s.concurrency, s.depth_limit, s.download_delay, s.max_retries) == (4, 3, 0.5, 7)
    assert (s.obey_robots, s.user_agent, s.max_pages) == (False, "ua/1", None)
    assert s.item_pipelines == ["p.First", "p.Later"]
    assert s.get("BOT_NAME") == "mybot" and s.get("NOT_A_SETTING", "d") == "d"
    assert s.getint("CONCURRENT_REQUESTS") == 4 and s.getint("concurrency") == 4
    assert s.getbool("ROBOTSTXT_OBEY") is False and s.getfloat("DOWNLOAD_DELAY") == 0.5
    assert s.getlist("RETRY_HTTP_CODES") == s.retry_http_codes and s["USER_AGENT"] == "ua/1"
    assert "DEPTH_LIMIT" in s and "NOPE" not in s


def test_every_unknown_key_is_reported_at_once_with_a_suggestion() -> None:
    with pytest.raises(ConfigurationError) as err:
        build_settings(
            cli=parse_kv(["CONCURENT_REQUESTS=4"]),
            spider_settings={"DOWNLOAD_DELAYS": 1, "concurency": 2, "zzzz": 1},
            environ={},
        )
    msg = str(err.value)
    assert msg.startswith("4 unknown setting(s)")
    assert (
        "'CONCURENT_REQUESTS' (from command line); did you mean 'CONCURRENT_REQUESTS' (kubecrawl: concurrency)?" in msg
    )
    assert "'DOWNLOAD_DELAYS' (from spider custom_settings); did you mean 'DOWNLOAD_DELAY'" in msg
    assert "'concurency' (from spider custom_settings); did you mean 'concurrency'?" in msg
    assert "'zzzz' (from spider custom_settings) " in msg  # nothing close: no suggestion


def test_cli_exits_2_naming_every_unknown_scrapy_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kubecrawl.cli import main

    spider = tmp_path / "typo_spider.py"
    spider.write_text(
        "import kubecrawl.scrapy as scrapy\n\n"
        "class S(scrapy.Spider):\n"
        "    name = 's'\n"
        "    custom_settings = {'ROBOTSTXT_OBEY': False, 'DNS_RESOLVER': 'x', 'SCHEDULER_MEMORY_QUEUE': 'y'}\n"
    )
    assert main(["crawl", str(spider), "-s", "CONCURRENT_REQUESTZ=2"]) == 2
    err = capsys.readouterr().err
    assert "3 unknown setting(s)" in err
    assert "DNS_RESOLVER" in err and "SCHEDULER_MEMORY_QUEUE" in err and "CONCURRENT_REQUESTZ" in err


def test_an_unknown_kubecrawl_environment_variable_exits_2_with_the_closest_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt KUBECRAWL_* variable (e.g. from a Crawl's spec.env) must not be silently ignored."""
    from kubecrawl.cli import main

    spider = tmp_path / "s.py"
    spider.write_text("import kubecrawl.scrapy as scrapy\n\nclass S(scrapy.Spider):\n    name = 's'\n")
    monkeypatch.setenv("KUBECRAWL_CONCURENCY", "4")
    assert main(["crawl", str(spider)]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'CONCURENCY' (from environment, KUBECRAWL_<KEY>); did you mean 'concurrency'?" in err


def test_kubecrawl_variables_that_are_not_settings_are_not_errors() -> None:
    """Read by other code (worker id), the operator, the build/test tooling, or Kubernetes service links."""
    from kubecrawl.settings import is_setting_variable

    environ = {
        "KUBECRAWL_WORKER_ID": "w1",
        "KUBECRAWL_OPERATOR_INTERVAL": "2",
        "KUBECRAWL_WORKER_IMAGE": "x",
        "KUBECRAWL_E2E_REQUIRED": "1",
        "KUBECRAWL_HELM": "/bin/helm",
        "KUBECRAWL_SERVICE_HOST": "10.0.0.1",
        "KUBECRAWL_PORT": "tcp://10.0.0.1:8080",
        "KUBECRAWL_PORT_8080_TCP_ADDR": "10.0.0.1",
        "KUBECRAWL_CONCURRENCY": "3",
        "KUBECRAWL_BOT_NAME": "inert scrapy setting",
    }
    s = build_settings(environ=environ)
    assert s.concurrency == 3
    assert [k for k in environ if is_setting_variable(k)] == ["KUBECRAWL_CONCURRENCY", "KUBECRAWL_BOT_NAME"]
