"""The operator image, built from Dockerfile.operator, starts `kubecrawl-operator run` as the chart runs it."""

from __future__ import annotations

import json

import pytest

from .containers import Build, container, inspect
from .probes import LEFTOVERS

pytestmark = pytest.mark.images

USER = "10001:10001"


def test_operator_image_config_matches_the_chart(operator_image: Build) -> None:
    config = inspect(operator_image.image)["Config"]
    assert config["User"] == USER
    assert config["Entrypoint"] == ["kubecrawl-operator"]
    # The chart passes `args: [run, ...]`; bare `docker run` gets `run` from CMD.
    assert config["Cmd"] == ["run"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "kubecrawl-operator"
    assert labels["org.opencontainers.image.version"] == "0.1.0"


def test_operator_help_runs_as_the_image_user(operator_image: Build) -> None:
    with container(operator_image.image) as c:
        top = c.run("kubecrawl-operator", "--help", user=USER)
        run = c.run("kubecrawl-operator", "run", "--help", user=USER)
    assert top.returncode == 0, top.stderr
    assert run.returncode == 0, run.stderr
    # Every flag the chart's Deployment passes is understood.
    for flag in ("--all-namespaces", "--namespace", "--standalone", "--peering", "--liveness"):
        assert flag in run.stdout, flag


def test_operator_image_carries_the_worker_package_and_registers_its_handlers(operator_image: Build) -> None:
    probe = (
        "import json, kopf, kubecrawl, kubecrawl.rules, kubecrawl_operator.handlers;"
        "print(json.dumps({'kubecrawl': kubecrawl.__version__, 'kopf': kopf.__name__}))"
    )
    with container(operator_image.image) as c:
        result = c.run("python", "-c", probe, user=USER)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"kubecrawl": "0.1.0", "kopf": "kopf"}


def test_operator_image_has_no_build_tools_or_caches(operator_image: Build) -> None:
    with container(operator_image.image) as c:
        result = c.run("python", "-c", LEFTOVERS, user="0:0")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"tools": {}, "caches": [], "debs": [], "setuptools": False, "venv_headers": []}
