"""kmock's Kubernetes emulator served from a background thread, made a little more like an API server.

It adds what the operator relies on and kmock leaves out: uid, creationTimestamp and generation
on create, and a generation bump when a spec changes. Tests talk to it over HTTP through a
kubeconfig, exactly as they would to a real kube-apiserver.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import threading
import uuid
from typing import Any

import attrs
import kmock
from kmock._internal import enums

RESOURCES: dict[str, dict[str, Any]] = {
    "kubecrawl.io/v1alpha1/crawls": {
        "kind": "Crawl", "namespaced": True, "singular": "crawl", "shortnames": {"kc"},
        "subresources": {"status", "scale"},
        "verbs": {"get", "list", "watch", "create", "patch", "update", "delete"},
    },
    # Discovered by kopf at start-up (never listed: the operator runs with scanning disabled).
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {"kind": "CustomResourceDefinition", "namespaced": False},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "v1/services": {"kind": "Service", "namespaced": True},
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True},
    "v1/pods": {"kind": "Pod", "namespaced": True},
    "v1/events": {"kind": "Event", "namespaced": True},
    "events.k8s.io/v1/events": {"kind": "Event", "namespaced": True},
    "apps/v1/statefulsets": {"kind": "StatefulSet", "namespaced": True},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True},
    "batch/v1/jobs": {"kind": "Job", "namespaced": True},
    "batch/v1/cronjobs": {"kind": "CronJob", "namespaced": True},
    "networking.k8s.io/v1/networkpolicies": {"kind": "NetworkPolicy", "namespaced": True},
    "policy/v1/poddisruptionbudgets": {"kind": "PodDisruptionBudget", "namespaced": True},
    "coordination.k8s.io/v1/leases": {
        "kind": "Lease", "namespaced": True, "verbs": {"get", "list", "watch", "create", "update", "patch", "delete"},
    },
}  # fmt: skip


@attrs.define(kw_only=True)
class ApiServerLikeEmulator(kmock.KubernetesEmulator):
    """Fills in the server-owned metadata fields the operator reads."""

    _version: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    async def _handle(self, request: kmock.Request) -> Any:  # type: ignore[override]
        if request.resource is not None and isinstance(request.data, dict):
            if request.action in (enums.action.CREATE, enums.action.UPDATE):
                # Optimistic concurrency tokens: kopf tests resourceVersion in its JSON patches.
                request.data.setdefault("metadata", {})["resourceVersion"] = str(next(self._version))
            if request.action == enums.action.CREATE:
                meta = request.data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("generation", 1)
                meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            elif request.action == enums.action.UPDATE and "spec" in request.data and request.subresource != "status":
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted:
                    current = self.objects[key].get("metadata", {}).get("generation", 1)
                    request.data.setdefault("metadata", {})["generation"] = current + 1
        return await super()._handle(request)


class EmulatorThread:
    """Runs the emulator's HTTP server on 127.0.0.1 in its own event loop and thread."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: ApiServerLikeEmulator | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kmock", daemon=True)

    def start(self, timeout: float = 30) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with ApiServerLikeEmulator() as emulator, kmock.Server(emulator) as server:
            for resource, info in RESOURCES.items():
                emulator.resources[resource] = kmock.ResourceInfo(**info)
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
