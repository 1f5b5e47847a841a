"""Fixtures of the e2e suite: a real control plane (session), the node helper, a namespace per test.

Without Go the suite is skipped with the reason; with KUBECRAWL_E2E_REQUIRED=1 (CI) it fails instead.
A summary of what ran is written to $KUBECRAWL_E2E_REPORT (JSON) when set.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubecrawl_fixtures import release, site  # noqa: F401 - fixtures of the kubecrawl flows
from tests.e2e.kubeharness import procs
from tests.e2e.kubeharness.binaries import BinariesUnavailable, ensure_binaries
from tests.e2e.kubeharness.controlplane import HOST_ADDRESS, ControlPlane
from tests.e2e.kubeharness.kube import Kube
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.runtime import VenvRuntime

logger = logging.getLogger(__name__)

_STATE: dict[str, Any] = {"cluster": None, "node": None}
_OUTCOMES: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": [], "xfailed": [], "xpassed": []}


def _required() -> bool:
    return os.environ.get("KUBECRAWL_E2E_REQUIRED") == "1"


@pytest.fixture(scope="session")
def e2e_bin() -> Path:
    try:
        return ensure_binaries()
    except BinariesUnavailable as exc:
        if _required():
            pytest.fail(f"e2e suite required (KUBECRAWL_E2E_REQUIRED=1) but cannot run: {exc}")
        pytest.skip(f"e2e suite skipped: {exc}")


def _teardown_on_sigterm() -> None:
    """A SIGTERM to pytest (CI timeouts, `kill`) tears the control plane down like Ctrl-C does."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session")
def kube_cluster(e2e_bin: Path) -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver + kube-controller-manager; `.kubeconfig`, `.server`, `.token`."""
    _teardown_on_sigterm()
    data = os.environ.get("KUBECRAWL_E2E_DATA")
    cluster = ControlPlane.create(e2e_bin, Path(data) if data else None)
    cluster.start()
    _STATE["cluster"] = cluster
    try:
        yield cluster
    finally:
        _STATE["cluster"] = None
        cluster.stop()


@pytest.fixture(scope="session")
def node(kube_cluster: ControlPlane) -> Iterator[Node]:
    """The node helper: binds Pending pods of every namespace and runs them as local processes."""
    workdir = Path(tempfile.mkdtemp(prefix="kubecrawl-e2e-node-", dir=kube_cluster.data_dir))
    runtime = VenvRuntime(
        shim_dir=Path(os.environ.get("KUBECRAWL_E2E_CACHE", Path.home() / ".cache" / "kubecrawl-e2e")) / "shim"
    )
    the_node = Node(
        kube=Kube(kube_cluster.server, kube_cluster.token),
        runtime=runtime,
        workdir=workdir,
        server=kube_cluster.server,
        host_ip=HOST_ADDRESS,
    )
    the_node.start()
    _STATE["node"] = the_node
    try:
        yield the_node
    finally:
        _STATE["node"] = None
        the_node.stop(grace=3)


@pytest.fixture
def kube(kube_cluster: ControlPlane) -> Kube:
    return Kube(kube_cluster.server, kube_cluster.token)


@pytest.fixture
def namespace(kube_cluster: ControlPlane, kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted after the test."""
    base = request.node.name.replace("_", "-").lower()[:40].strip("-")
    name = f"{base}-{secrets.token_hex(3)}"
    kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    procs.wait_until(
        lambda: kube.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=60,
        what=f"default ServiceAccount in {name}",
    )
    yield name
    kube.delete(f"/api/v1/namespaces/{name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        kind = report.outcome
        if hasattr(report, "wasxfail"):
            kind = "xfailed" if report.skipped else "xpassed"
        _OUTCOMES.setdefault(kind, []).append(item.nodeid)
    if report.failed:
        lines = []
        cluster = _STATE.get("cluster")
        if cluster is not None:
            lines.append(cluster.describe_logs())
            dead = cluster.failed_processes()
            if dead:
                lines.append(f"control plane processes exited: {dead}")
        the_node = _STATE.get("node")
        if the_node is not None:
            lines.append(f"pod logs (one dir per pod): {the_node.workdir / 'pods'}")
            if the_node.errors:
                lines.append(f"node helper errors: {the_node.errors[-5:]}")
        if lines:
            report.sections.append(("e2e logs", "\n".join(lines)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("KUBECRAWL_E2E_REPORT")
    if path:
        Path(path).write_text(json.dumps({k: v for k, v in _OUTCOMES.items()}, indent=2))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
