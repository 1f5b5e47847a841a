"""The operator image, run with `buildah run`, reconciles a Crawl on a real kube-apiserver under the
chart's ServiceAccount: the same bytes and the same permissions a user deploys.

Uses the control plane of the e2e suite (tests/e2e/kubeharness). Without its binaries the test is
skipped with the reason, unless KUBECRAWL_E2E_REQUIRED=1 (CI), where it fails instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e.kubeharness import procs
from tests.e2e.kubeharness.binaries import cache_bin_dir
from tests.e2e.kubeharness.controlplane import ControlPlane

from .containers import REPO, Build, container

pytestmark = [pytest.mark.images, pytest.mark.e2e]

RELEASE_NS = "kubecrawl-system"
CRAWL_NS = "crawls"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kubectl(cluster: ControlPlane, *args: str, stdin: str | None = None) -> str:
    return cluster.kubectl(*args, input=stdin).stdout


def _crawl(name: str) -> dict[str, object]:
    return {
        "apiVersion": "kubecrawl.io/v1alpha1",
        "kind": "Crawl",
        "metadata": {"name": name, "namespace": CRAWL_NS},
        "spec": {
            "replicas": 1,
            "spider": {
                "rules": {
                    "name": "site",
                    "start": {"urls": ["http://127.0.0.1:9/"]},
                    "callbacks": {"parse": {"items": [{"fields": {"url": {"response": "url"}}}]}},
                }
            },
        },
    }


def test_operator_image_reconciles_a_crawl_with_the_charts_service_account(
    cluster: ControlPlane, operator_image: Build, tmp_path: Path
) -> None:
    # The chart, installed by real Helm: CRDs, ServiceAccount, ClusterRole(Binding). No node runs its
    # Deployment here; the operator runs from the image below with that ServiceAccount's token.
    helm = cache_bin_dir() / "helm"
    subprocess.run(
        [
            str(helm),
            f"--kubeconfig={cluster.kubeconfig}",
            "install",
            "kubecrawl",
            str(REPO / "charts" / "kubecrawl"),
            "--namespace",
            RELEASE_NS,
            "--create-namespace",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "HELM_CACHE_HOME": str(tmp_path / "hc"),
            "HELM_CONFIG_HOME": str(tmp_path / "hf"),
            "HELM_DATA_HOME": str(tmp_path / "hd"),
        },
    )
    token = _kubectl(cluster, "-n", RELEASE_NS, "create", "token", "kubecrawl").strip()
    sa_user = f"system:serviceaccount:{RELEASE_NS}:kubecrawl"
    kube_dir = tmp_path / "kube"
    kube_dir.mkdir()
    cluster.write_kubeconfig_for_token(token, sa_user, kube_dir / "config")
    os.chmod(kube_dir, 0o755)
    os.chmod(kube_dir / "config", 0o644)
    _kubectl(cluster, "create", "namespace", CRAWL_NS)

    port = _free_port()
    with container(operator_image.image) as c:
        argv = [
            "buildah",
            "run",
            "--isolation=chroot",
            "--network=host",
            "--user",
            "10001:10001",
            "--volume",
            f"{kube_dir}:/kube:ro",
            "--env",
            "KUBECONFIG=/kube/config",
            c.name,
            "--",
            "kubecrawl-operator",
            "run",
            "--standalone",
            "--all-namespaces",
            f"--liveness=http://127.0.0.1:{port}/healthz",
        ]
        log = (tmp_path / "operator.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:

            def alive() -> bool:
                assert proc.poll() is None, (tmp_path / "operator.log").read_text()[-4000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                        return bool(r.status == 200)
                except OSError:
                    return False

            procs.wait_until(alive, timeout=120, interval=0.5, what="the operator's liveness endpoint")
            _kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(_crawl("inimage")))

            def children() -> bool:
                out = _kubectl(
                    cluster,
                    "-n",
                    CRAWL_NS,
                    "get",
                    "secret,statefulset,service,networkpolicy",
                    "-o",
                    "name",
                    "--ignore-not-found",
                )
                return {
                    "secret/inimage-redis-auth",
                    "statefulset.apps/inimage-redis",
                    "networkpolicy.networking.k8s.io/inimage-redis",
                } <= set(out.split())

            procs.wait_until(children, timeout=120, interval=0.5, what="the operator to create the crawl's children")
            status = yaml.safe_load(_kubectl(cluster, "-n", CRAWL_NS, "get", "crawl", "inimage", "-o", "yaml"))
            assert (status.get("status") or {}).get("phase"), status
        finally:
            procs.stop(proc, grace=15)
            log.close()

    calls = cluster.audit_log.calls(sa_user)
    assert calls, "the operator in the image made no API calls with the chart's ServiceAccount"
    forbidden = sorted({(c.verb, c.api_group, c.resource, c.subresource) for c in calls if c.code == 403})
    assert forbidden == [], f"the chart's RBAC denied the operator: {forbidden}"
