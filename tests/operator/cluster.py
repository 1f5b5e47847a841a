"""Test-side access to a Kubernetes API (kmock's emulator or a real kube-apiserver) through a kubeconfig."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml

from kubecrawl_operator.kube import KINDS, raw_call
from kubecrawl_operator.models import GROUP, PLURAL, VERSION

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last error at the deadline."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # reported at the deadline; a probe may fail until the state converges
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {last!r}" if last else ""))
        time.sleep(interval)


def write_kubeconfig(path: Path, server: str, token: str = "test") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Cluster:
    """The calls a user (kubectl) or a kubelet/controller would make, for one namespace."""

    api: kubernetes.client.ApiClient
    namespace: str
    emulated: bool

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        return raw_call(self.api, method, path, body, content_type=content_type)

    def _path(self, kind: str, name: str | None = None, sub: str | None = None) -> str:
        if kind == "Crawl":
            prefix, plural = f"/apis/{GROUP}/{VERSION}", PLURAL
        elif kind == "Event":
            prefix, plural = "/api/v1", "events"
        else:
            k = KINDS[kind]
            prefix, plural = k.prefix, k.plural
        path = f"{prefix}/namespaces/{self.namespace}/{plural}"
        return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def create(self, kind: str, manifest: dict[str, Any]) -> dict[str, Any]:
        manifest.setdefault("metadata", {})["namespace"] = self.namespace
        return self._call("POST", self._path(kind), manifest)  # type: ignore[no-any-return]

    def create_crawl(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.create(
            "Crawl", {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Crawl", "metadata": {"name": name}, "spec": spec}
        )

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", self._path(kind, name))  # type: ignore[no-any-return]
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str) -> list[dict[str, Any]]:
        return list((self._call("GET", self._path(kind)) or {}).get("items") or [])

    def patch(self, kind: str, name: str, body: dict[str, Any], sub: str | None = None) -> dict[str, Any]:
        return self._call("PATCH", self._path(kind, name, sub), body, "application/merge-patch+json")  # type: ignore[no-any-return]

    def delete(self, kind: str, name: str) -> None:
        self._call("DELETE", self._path(kind, name))

    def status(self, name: str) -> dict[str, Any]:
        return (self.get("Crawl", name) or {}).get("status") or {}

    def condition(self, name: str, ctype: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == ctype), {})

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.list("Event") if (e.get("involvedObject") or {}).get("name") == name]

    def seed_jobs(self, crawl: str) -> list[dict[str, Any]]:
        return [
            {"apiVersion": "batch/v1", "kind": "Job", **j}  # items of a list carry no apiVersion/kind
            for j in self.list("Job")
            if (j["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "seed"
            and j["metadata"]["labels"].get("app.kubernetes.io/instance") == crawl
        ]

    def finish_seed_job(self, crawl: str) -> None:
        """The master exited 0: what the kubelet and the Job controller record.

        A real control plane has a Job controller but maybe no kubelet: mark the Job's pods Succeeded
        (the kubelet's part) and let the controller complete the Job. The emulator has neither: write
        the Job's completed status directly (the controller's part).
        """
        job = eventually(lambda: self.seed_jobs(crawl), f"the seed job of {crawl}")[0]
        name = job["metadata"]["name"]
        if self.emulated:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            complete = [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]
            self.patch("Job", name, {"status": {"succeeded": 1, "active": 0, "conditions": complete}}, sub="status")
            return

        def pods_succeeded() -> bool:
            pods = [p for p in self.list("Pod") if (p["metadata"].get("labels") or {}).get("job-name") == name]
            for pod in pods:
                if (pod.get("status") or {}).get("phase") != "Succeeded":
                    self.patch("Pod", pod["metadata"]["name"], {"status": {"phase": "Succeeded"}}, sub="status")
            return bool(((self.get("Job", name) or {}).get("status") or {}).get("succeeded"))

        eventually(pods_succeeded, f"seed job {name} to succeed")

    def wait_phase(self, name: str, phase: str, timeout: float = 60.0) -> dict[str, Any]:
        return eventually(
            lambda: (s := self.status(name)).get("phase") == phase and s, f"crawl {name} in phase {phase}", timeout
        )
