"""Several operator replicas with `--leader-elect`: the one holding the Lease reconciles, the others stand by.

Two real operator processes against the API (the emulator, or a real kube-apiserver with
KUBECRAWL_OPERATOR_TEST_API=controlplane); the chart's two-replica flow on the e2e control plane is
tests/e2e/test_kubecrawl_ha.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import KubeApi, OperatorProcess

LEASE = "kubecrawl-operator"
RULES = {
    "name": "news",
    "start": {"urls": ["http://127.0.0.1:1/"]},
    "callbacks": {"parse": {"follow": [{"css": "a::attr(href)", "callback": "parse"}]}},
}


def lease(cluster: Cluster) -> dict[str, Any]:
    return cluster._call("GET", f"/apis/coordination.k8s.io/v1/namespaces/{cluster.namespace}/leases/{LEASE}")  # type: ignore[no-any-return]


def election_args(namespace: str, identity: str) -> tuple[str, ...]:
    # Short durations keep the test quick; the relation duration > deadline > period is what matters.
    return (
        "--leader-elect",
        f"--leader-elect-namespace={namespace}",
        f"--leader-elect-name={LEASE}",
        f"--identity={identity}",
        "--lease-duration=4",
        "--renew-deadline=3",
        "--retry-period=0.5",
    )


@pytest.fixture
def replicas(kube_api: KubeApi, cluster: Cluster, tmp_path: Path) -> Iterator[dict[str, OperatorProcess]]:
    procs = {
        name: OperatorProcess(
            kube_api.kubeconfig,
            cluster.namespace,
            tmp_path / f"{name}.log",
            mode_args=election_args(cluster.namespace, name),
        ).start()
        for name in ("op-a", "op-b")
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()
        for name, proc in procs.items():
            assert "Traceback" not in proc.log(), (name, proc.log()[-5000:])


def ready(procs: dict[str, OperatorProcess]) -> list[str]:
    return [
        name
        for name, p in procs.items()
        if p.proc is not None and p.proc.poll() is None and p.probe("/readyz")[0] == 200
    ]


def test_two_replicas_have_exactly_one_active_and_the_standby_takes_over_when_it_is_killed(
    cluster: Cluster, replicas: dict[str, OperatorProcess]
) -> None:
    (active,) = eventually(lambda: (r := ready(replicas)) and len(r) == 1 and r, "exactly one ready replica")
    (standby,) = set(replicas) - {active}
    assert lease(cluster)["spec"]["holderIdentity"] == active
    # The standby names the holder once it has read the Lease (its first attempt may have been a lost create).
    code, text = eventually(
        lambda: (r := replicas[standby].probe("/readyz")) and active in r[1] and r, "the standby naming the holder"
    )
    assert code == 503 and text.startswith("standby"), (code, text)
    assert replicas[standby].probe("/healthz")[0] == 200, "a standby is alive (liveness), only not ready"
    assert replicas[active].probe("/healthz")[0] == 200

    cluster.create_crawl("news", {"spider": {"rules": RULES}})
    cluster.wait_phase("news", "Pending")
    assert ready(replicas) == [active], "still exactly one active replica"
    assert f"created Secret {cluster.namespace}/news-redis-auth" in replicas[active].log()
    assert "created " not in replicas[standby].log(), "the standby touched a child"

    assert replicas[active].proc is not None
    replicas[active].proc.kill()  # SIGKILL: no release, the standby waits out the lease duration
    replicas[active].proc.wait(timeout=30)
    eventually(lambda: ready(replicas) == [standby], "the standby to take over", timeout=60)
    held = lease(cluster)["spec"]
    assert held["holderIdentity"] == standby and held["leaseTransitions"] >= 1

    cluster.create_crawl("later", {"spider": {"rules": RULES}})
    cluster.wait_phase("later", "Pending")
    assert f"created Secret {cluster.namespace}/later-redis-auth" in replicas[standby].log()


def test_a_stopped_leader_releases_the_lease_for_its_standby(
    cluster: Cluster, replicas: dict[str, OperatorProcess]
) -> None:
    (active,) = eventually(lambda: (r := ready(replicas)) and len(r) == 1 and r, "exactly one ready replica")
    (standby,) = set(replicas) - {active}
    replicas[active].stop()  # SIGTERM: kopf stops, then the Lease is given up
    assert replicas[active].proc is not None and replicas[active].proc.returncode == 0
    assert "released lease" in replicas[active].log()
    eventually(lambda: ready(replicas) == [standby], "the standby to take over", timeout=60)
    assert lease(cluster)["spec"]["holderIdentity"] == standby
