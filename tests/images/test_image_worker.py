"""The worker image, built from Dockerfile.worker, runs the crawl a user would deploy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from .conftest import FIGURES
from .containers import Build, container, history, inspect, size_bytes
from .probes import LEFTOVERS

pytestmark = pytest.mark.images

MB = 1_000_000
WORKER_USER = "10001:10001"


def _base_image() -> str:
    for line in (Path(__file__).resolve().parents[2] / "Dockerfile.worker").read_text().splitlines():
        if line.startswith("ARG PYTHON_IMAGE="):
            name = line.split("=", 1)[1]
            return name if "/" in name else f"docker.io/library/{name}"
    raise AssertionError("Dockerfile.worker declares no ARG PYTHON_IMAGE=")


def _spider(base_url: str) -> dict[str, object]:
    return {
        "name": "fixture_news",
        "start": {"urls": [f"{base_url}/index.html"]},
        "callbacks": {
            "parse": {"follow": [{"css": "a.story::attr(href)", "callback": "article"}]},
            "article": {
                "items": [
                    {
                        "fields": {
                            "url": {"response": "url"},
                            "title": {"css": "h1::text", "required": True},
                            "author": {"css": ".author::text"},
                        }
                    }
                ]
            },
        },
    }


def _finished(output: str) -> dict[str, object]:
    """The crawl's closing `crawl_finished` event from its JSON log lines."""
    for line in reversed(output.splitlines()):
        if '"crawl_finished"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no crawl_finished event in the crawl's output:\n{output[-3000:]}")


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A host directory the image's non-root user may write to, mounted at /out."""
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    return out


def test_worker_image_runs_as_a_non_root_numeric_user(worker_image: Build) -> None:
    assert inspect(worker_image.image)["Config"]["User"] == WORKER_USER


def test_worker_image_entrypoint_is_kubecrawl_as_the_operator_expects(worker_image: Build) -> None:
    from kubecrawl_operator.builders import workers
    from kubecrawl_operator.models import parse_spec

    config = inspect(worker_image.image)["Config"]
    assert config["Entrypoint"] == ["kubecrawl"]
    assert config["Cmd"] == ["--help"]
    # The operator's pods pass only args (`crawl --role ... [-a k=v] [-s feeds=...]`) and rely on this entrypoint.
    spec = parse_spec({"spider": {"module": "pkg.mod:Spider", "args": {"tag": "love"}}})
    for role in ("master", "slave"):
        assert workers._args(spec, role)[:5] == ["crawl", "--role", role, "-a", "tag=love"]


def test_worker_image_carries_oci_labels(worker_image: Build) -> None:
    labels = inspect(worker_image.image)["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "kubecrawl-worker"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    for key in ("description", "licenses", "source"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_worker_image_has_no_build_tools_or_caches(worker_image: Build) -> None:
    with container(worker_image.image) as c:
        result = c.run("python", "-c", LEFTOVERS, user="0:0")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == {"tools": {}, "caches": [], "debs": [], "setuptools": False, "venv_headers": []}


def test_build_time_ca_settings_stay_out_of_the_final_image(worker_image: Build) -> None:
    """The host CA bundle and PIP_CERT are builder-stage only: not in the config, env or history."""
    config = inspect(worker_image.image)["Config"]
    recorded = json.dumps([config, history(worker_image.image)])
    assert "PIP_CERT" not in recorded
    assert not any(e.startswith(("PIP_", "REQUESTS_CA_BUNDLE", "SSL_CERT")) for e in config["Env"])


def test_worker_image_stays_within_120_mb_of_its_base(worker_image: Build) -> None:
    base, image = size_bytes(_base_image()), size_bytes(worker_image.image)
    FIGURES["base image (MB)"] = f"{base / MB:.1f}"
    FIGURES["worker image (MB)"] = f"{image / MB:.1f} (+{(image - base) / MB:.1f} over base)"
    assert image - base <= 120 * MB


def test_kubecrawl_version_runs_as_the_image_user(worker_image: Build) -> None:
    with container(worker_image.image) as c:
        version = c.run("kubecrawl", "--version", user=WORKER_USER)
        whoami = c.run("id", "-u", user=WORKER_USER)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "kubecrawl 0.1.0"
    assert whoami.stdout.strip() == "10001"


def test_image_user_cannot_write_to_the_installed_code(worker_image: Build) -> None:
    with container(worker_image.image) as c:
        result = c.run("sh", "-c", "touch /opt/venv/bin/kubecrawl-tampered", user=WORKER_USER)
    assert result.returncode != 0
    assert "Permission denied" in result.stderr


def test_crawl_inside_worker_image_stores_every_article_of_a_local_site(
    worker_image: Build, fixture_site: tuple[str, dict[str, dict[str, str]]], out_dir: Path
) -> None:
    base_url, articles = fixture_site
    (out_dir / "spider.yaml").write_text(yaml.safe_dump(_spider(base_url)))
    with container(worker_image.image) as c:
        result = c.run(
            "kubecrawl",
            "crawl",
            "/out/spider.yaml",
            "-o",
            "/out/items.jsonl",
            "-s",
            "ssrf_guard=on",
            "-s",
            "ssrf_allow=127.0.0.1",
            user=WORKER_USER,
            volumes=[(out_dir, "/out")],
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    items = [json.loads(line) for line in (out_dir / "items.jsonl").read_text().splitlines()]
    got = {item["url"].removeprefix(base_url): {"title": item["title"], "author": item["author"]} for item in items}
    assert got == articles
    assert len(items) == len(articles)
    finished = _finished(result.stdout + result.stderr)
    assert finished["items"] == len(articles) and finished["errors"] == 0


def test_ssrf_guard_in_image_refuses_loopback_once_inside_kubernetes(
    worker_image: Build, fixture_site: tuple[str, dict[str, dict[str, str]]], out_dir: Path
) -> None:
    """ssrf_guard=auto (the default) turns on when the pod environment says Kubernetes."""
    base_url, _ = fixture_site
    (out_dir / "spider.yaml").write_text(yaml.safe_dump(_spider(base_url)))
    with container(worker_image.image) as c:
        result = c.run(
            "kubecrawl",
            "crawl",
            "/out/spider.yaml",
            "-o",
            "/out/items.jsonl",
            user=WORKER_USER,
            volumes=[(out_dir, "/out")],
            env={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        )
    finished = _finished(result.stdout + result.stderr)
    assert finished["items"] == 0
    assert finished["errors_by_kind"] == {"ssrf_refused": 1}
    items_file = out_dir / "items.jsonl"
    assert not items_file.exists() or items_file.read_text() == ""
