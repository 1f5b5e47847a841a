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
    ],
)
def test_invalid_settings_fail_with_the_key_named(cli: dict, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        build_settings(cli=cli, environ={})


def test_secret_password_is_not_printed() -> None:
    s = build_settings(environ={"KUBECRAWL_REDIS_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s) and s.redis_password_value == "hunter2"
