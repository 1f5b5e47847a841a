"""kubecrawl on the e2e cluster: the chart installed by helm, a fixture site, Crawl manifests, Redis reads.

Imported by the kubecrawl flow tests (fixtures are registered there with `pytest_plugins`-free imports).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.kubeharness.controlplane import ControlPlane
from tests.e2e.kubeharness.kube import Kube, condition, wait_for
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubecrawl"
GROUP, VERSION = "kubecrawl.io", "v1alpha1"
RELEASE_NS = "kubecrawl-system"
SITE_HOST = "127.0.255.1"  # a host address: inside pods, 127.0.0.1 is the pod itself


@dataclass
class Site:
    """A static site on SITE_HOST: `pages` linked from / and from each other; each page is one item."""

    pages: dict[str, str] = field(default_factory=dict)  # path → title
    hits: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _httpd: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://{SITE_HOST}:{self.port}"

    def add(self, n: int) -> None:
        for i in range(len(self.pages), len(self.pages) + n):
            self.pages[f"/page/{i}.html"] = f"Page number {i}"

    def body(self, path: str) -> bytes | None:
        links = "".join(f'<li><a href="{p}">{t}</a></li>' for p, t in self.pages.items())
        if path == "/":
            return f"<html><head><title>Index</title></head><body><ul>{links}</ul></body></html>".encode()
        if path in self.pages:
            title = self.pages[path]
            return (
                f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
                f'<ul>{links}</ul><a href="/">home</a></body></html>'
            ).encode()
        return None

    def start(self) -> Site:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                site.hits[self.path] = site.hits.get(self.path, 0) + 1
                body = site.body(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self._httpd = ThreadingHTTPServer((SITE_HOST, 0), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


def site_spider(site: Site) -> dict[str, Any]:
    """A declarative spider (spec.spider.rules) that follows /page/ links and yields one item per page."""
    return {
        "name": "site",
        "start": {"urls": [f"{site.base}/"], "callback": "index"},
        "callbacks": {
            "index": {"format": "html", "follow": [{"css": "a::attr(href)", "callback": "page", "allow": ["/page/"]}]},
            "page": {
                "format": "html",
                "items": [{"fields": {"url": {"response": "url"}, "title": {"css": "h1::text", "required": True}}}],
                "follow": [{"css": "a::attr(href)", "callback": "page", "allow": ["/page/"]}],
            },
        },
    }


def crawl_manifest(name: str, site: Site, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "spider": {"rules": site_spider(site)},
        "replicas": 2,
        "image": "kubecrawl/worker:e2e",
        "ssrfAllow": [SITE_HOST],
        "terminationGracePeriodSeconds": 5,
    }
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Crawl", "metadata": {"name": name}, "spec": body}


def crawls_path(ns: str, name: str = "") -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/crawls" + (f"/{name}" if name else "")


@dataclass
class Release:
    cluster: ControlPlane
    namespace: str
    service_account: str

    @property
    def sa_user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def install_chart(cluster: ControlPlane, kube: Kube, node: Node) -> Release:
    """`helm install` the chart; the node helper then runs the operator pod with the chart's SA token."""
    if not CHART.exists():
        pytest.fail(f"the chart is missing at {CHART}")
    result = cluster.helm(
        "install",
        "kubecrawl",
        str(CHART),
        "--namespace",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "operator.image.repository=kubecrawl/operator",
        "--set",
        "operator.image.tag=e2e",
        "--set",
        "worker.image.repository=kubecrawl/worker",
        "--set",
        "worker.image.tag=e2e",
        "--set",
        "operator.reconcileIntervalSeconds=2",
        "--wait",
        "--timeout",
        "180s",
        check=False,
    )
    if result.returncode != 0:
        pods = kube.get(f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
        logs = {p["metadata"]["name"]: node.logs(RELEASE_NS, p["metadata"]["name"])[-3000:] for p in pods}
        pytest.fail(f"helm install failed: {result.stderr}\noperator pod logs: {logs}")
    (dep,) = kube.get(f"/apis/apps/v1/namespaces/{RELEASE_NS}/deployments")["items"]
    sa = dep["spec"]["template"]["spec"].get("serviceAccountName", "default")
    return Release(cluster=cluster, namespace=RELEASE_NS, service_account=sa)


def redis_for(kube: Kube, node: Node, ns: str, crawl: str) -> redis.Redis:
    """A client to the crawl's Redis pod (its pod IP on this machine), with the password from the Secret."""
    secret = kube.get(f"/api/v1/namespaces/{ns}/secrets/{crawl}-redis-auth")
    password = base64.b64decode(secret["data"]["password"]).decode()
    pods = kube.get(
        f"/api/v1/namespaces/{ns}/pods",
        labelSelector=f"app.kubernetes.io/instance={crawl},app.kubernetes.io/component=redis",
    )["items"]
    ip = next(p["status"]["podIP"] for p in pods if condition(p, "Ready") == "True")
    return redis.Redis(host=ip, port=6379, password=password, decode_responses=True)


def stored_items(client: redis.Redis, crawl: str) -> list[dict[str, Any]]:
    return [json.loads(fields["j"]) for _id, fields in client.xrange(f"kc:{{{crawl}}}:items")]


def wait_phase(kube: Kube, ns: str, name: str, phases: set[str], timeout: float = 240) -> dict[str, Any]:
    return wait_for(
        kube,
        crawls_path(ns, name),
        lambda c: (c.get("status") or {}).get("phase") in phases,
        timeout=timeout,
        what=f"Crawl {name} phase in {phases}",
    )


def slave_pids(node: Node, ns: str, crawl: str) -> dict[str, dict[str, int]]:
    return {k: v for k, v in node.live_pids(ns).items() if k.startswith(f"{crawl}-slave-")}


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    s = Site()
    s.add(12)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def release(kube_cluster: ControlPlane, node: Node) -> Release:
    kube = Kube(kube_cluster.server, kube_cluster.token)
    rel = install_chart(kube_cluster, kube, node)
    wait_until(lambda: node.live_pids(RELEASE_NS), timeout=60, what="operator pod process")
    return rel


__all__ = ["Release", "Site", "condition", "release", "site", "wait_until"]
