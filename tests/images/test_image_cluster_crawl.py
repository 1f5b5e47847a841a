"""A whole crawl on the e2e "cluster" where the operator and every worker run inside the real images.

The chart is installed by real Helm; the e2e node helper runs the pods, with `BuildahRuntime` for the
kubecrawl images (Redis still runs as a local redis-server). This is the same bytes a user deploys,
with the same RBAC, the same pod environment (SSRF guard on: the Crawl allow-lists the site), and the
same manifests the operator writes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubecrawl_fixtures import (
    RELEASE_NS,
    Site,
    crawl_manifest,
    crawls_path,
    install_chart,
    redis_for,
    slave_pids,
    stored_items,
    wait_phase,
)
from tests.e2e.kubeharness.controlplane import HOST_ADDRESS, ControlPlane
from tests.e2e.kubeharness.kube import Kube
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until
from tests.e2e.kubeharness.runtime import VenvRuntime

from .buildah_runtime import BuildahRuntime, shim_dir_default
from .containers import Build

pytestmark = [pytest.mark.images, pytest.mark.e2e]

NAMESPACE = "crawls"


@pytest.fixture(scope="module")
def image_node(cluster: ControlPlane, worker_image: Build, operator_image: Build) -> Iterator[Node]:
    runtime = BuildahRuntime(fallback=VenvRuntime(shim_dir=shim_dir_default()))
    node = Node(
        kube=Kube(cluster.server, cluster.token),
        runtime=runtime,
        workdir=Path(tempfile.mkdtemp(prefix="kubecrawl-images-node-", dir=cluster.data_dir)),
        server=cluster.server,
        host_ip=HOST_ADDRESS,
    )
    node.start()
    try:
        yield node
    finally:
        node.stop(grace=5)
        runtime.cleanup()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    s.add(10)
    s.start()
    yield s
    s.stop()


def test_crawl_on_the_cluster_runs_in_the_real_images_and_stores_exactly_the_sites_pages(
    cluster: ControlPlane, image_node: Node, site: Site
) -> None:
    kube = Kube(cluster.server, cluster.token)
    release = install_chart(cluster, kube, image_node)
    wait_until(lambda: image_node.live_pids(RELEASE_NS), timeout=120, what="the operator pod's process")
    kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    wait_until(
        lambda: kube.get_or_none(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"),
        timeout=60,
        what="the namespace's default ServiceAccount",
    )

    kube.post(crawls_path(NAMESPACE), crawl_manifest("inimages", site, replicas=2))
    wait_until(
        lambda: len(slave_pids(image_node, NAMESPACE, "inimages")) == 2, timeout=240, what="two slave containers"
    )
    crawl = wait_phase(kube, NAMESPACE, "inimages", {"Completed"}, timeout=300)

    items = stored_items(redis_for(kube, image_node, NAMESPACE, "inimages"), "inimages")
    assert sorted(i["url"] for i in items) == sorted(f"{site.base}{p}" for p in site.pages)
    assert sorted(i["title"] for i in items) == sorted(site.pages.values())
    assert crawl["status"]["stats"]["items"] == len(site.pages)

    # The pods really ran in the images: buildah's working containers exist for them.
    runtime = image_node.runtime
    assert isinstance(runtime, BuildahRuntime)
    ran = set(runtime._containers)
    assert any(key.startswith(f"{RELEASE_NS}/") for key in ran), ran
    assert any(key.startswith(f"{NAMESPACE}/inimages-slave-") for key in ran), ran
    assert any(key.startswith(f"{NAMESPACE}/inimages-seed-") for key in ran), ran

    forbidden = [c for c in cluster.audit_log.calls(release.sa_user) if c.code == 403]
    assert forbidden == [], forbidden
