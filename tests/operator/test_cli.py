"""`kubecrawl-operator run` flags: scope, peering, liveness, default worker image."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kubecrawl_operator import rbac
from kubecrawl_operator.cli import parse_args
from kubecrawl_operator.kube import KINDS


def test_namespaces_are_watched_when_given_else_the_whole_cluster() -> None:
    opts = parse_args(["run", "--namespace", "a", "-n", "b", "--standalone"])
    assert (opts.namespaces, opts.clusterwide, opts.standalone) == (("a", "b"), False, True)
    assert parse_args(["run", "-A"]).clusterwide is True
    assert parse_args(["run"]).clusterwide is True


def test_peering_replaces_standalone(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = parse_args(["run", "--peering", "kubecrawl", "--liveness", "http://0.0.0.0:8080/healthz"])
    assert (opts.standalone, opts.peering, opts.liveness) == (False, "kubecrawl", "http://0.0.0.0:8080/healthz")
    with pytest.raises(SystemExit):
        parse_args(["run", "--peering", "x", "--standalone"])


def test_worker_image_flag_sets_the_environment_the_handlers_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECRAWL_WORKER_IMAGE", "before")  # restored after the test
    parse_args(["run", "--worker-image", "registry.local/kubecrawl/worker:9"])
    assert os.environ["KUBECRAWL_WORKER_IMAGE"] == "registry.local/kubecrawl/worker:9"


def test_console_script_prints_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kubecrawl_operator.cli", "run", "--help"], capture_output=True, text=True, check=True
    )
    assert "--all-namespaces" in out.stdout and "--liveness" in out.stdout


def test_every_kind_the_client_touches_is_covered_by_the_rbac_rules() -> None:
    for kind in KINDS.values():
        assert any(rbac.allowed(kind.group, kind.plural, verb) for verb in ("get", "list")), kind
