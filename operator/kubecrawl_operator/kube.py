"""A small Kubernetes client for the operator's children: get, list, create, merge-patch, delete.

Built on the `kubernetes` package's ApiClient (kubeconfig or in-cluster credentials), with the
paths of the few kinds the operator owns spelled out, so its RBAC footprint is `rbac.RULES`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kubernetes

from kubecrawl_operator import rbac

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str

    @property
    def prefix(self) -> str:
        return f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"


KINDS: dict[str, Kind] = {
    "Secret": Kind("", "v1", "secrets"),
    "Service": Kind("", "v1", "services"),
    "ConfigMap": Kind("", "v1", "configmaps"),
    "Pod": Kind("", "v1", "pods"),
    "Event": Kind("", "v1", "events"),
    "StatefulSet": Kind("apps", "v1", "statefulsets"),
    "Deployment": Kind("apps", "v1", "deployments"),
    "Job": Kind("batch", "v1", "jobs"),
    "CronJob": Kind("batch", "v1", "cronjobs"),
    "NetworkPolicy": Kind("networking.k8s.io", "v1", "networkpolicies"),
    "PodDisruptionBudget": Kind("policy", "v1", "poddisruptionbudgets"),
}


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def load_api_client() -> kubernetes.client.ApiClient:
    """In-cluster credentials inside a pod, else KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


def raw_call(
    api: kubernetes.client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    timeout: float = 30,
) -> Any:
    """One authenticated HTTP call through the client's configuration; JSON in, JSON (dicts) out."""
    params = api.param_serialize(
        method,
        path,
        query_params=query or [],
        body=body,
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*params, _request_timeout=timeout)
    response.read()
    return api.response_deserialize(response, {"2XX": "object"}).data


class Kube:
    """The operator's calls on its children; every call is checked against `rbac.RULES`."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = api

    def _call(
        self,
        verb: str,
        kind: str,
        namespace: str,
        name: str | None = None,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        k = KINDS[kind]
        if not rbac.allowed(k.group, k.plural, verb):
            raise PermissionError(f"{verb} {k.plural} is not in kubecrawl_operator.rbac.RULES")
        method = {"get": "GET", "list": "GET", "create": "POST", "patch": "PATCH", "delete": "DELETE"}[verb]
        path = f"{k.prefix}/namespaces/{namespace}/{k.plural}" + (f"/{name}" if name else "")
        try:
            return raw_call(self._api, method, path, body, query, content_type)
        except kubernetes.client.ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.body or exc.reason)) from exc

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("get", kind, namespace, name)  # type: ignore[no-any-return]
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, kind: str, namespace: str, labels: dict[str, str], fields: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        query = [("labelSelector", selector)] if selector else []
        if fields:
            query.append(("fieldSelector", ",".join(f"{k}={v}" for k, v in sorted(fields.items()))))
        result = self._call("list", kind, namespace, query=query)
        items = (result or {}).get("items") or []
        # Filter here too: an API that ignores labelSelector must not make us touch others' objects.
        return [
            item
            for item in items
            if all((item.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in labels.items())
        ]

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when it already exists (a handler re-run after a restart)."""
        meta = manifest["metadata"]
        try:
            created: dict[str, Any] = self._call("create", manifest["kind"], meta["namespace"], body=manifest)
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise
        logger.info("created %s %s/%s", manifest["kind"], meta["namespace"], meta["name"])
        return created

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = self._call(
            "patch", kind, namespace, name, body=body, content_type="application/merge-patch+json"
        )
        logger.info("patched %s %s/%s", kind, namespace, name)
        return patched

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self._call("delete", kind, namespace, name, body=body)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        logger.info("deleted %s %s/%s", kind, namespace, name)
        return True


class PassCache(Kube):
    """One reconcile pass's view: each child is read at most once, and writes update the view."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube._api)
        self._seen: dict[tuple[str, str, str], dict[str, Any] | None] = {}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (kind, namespace, name)
        if key not in self._seen:
            self._seen[key] = super().get(kind, namespace, name)
        return self._seen[key]

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        created = super().create(manifest)
        meta = manifest["metadata"]
        self._seen.pop((manifest["kind"], meta["namespace"], meta["name"]), None)
        if created is not None:
            self._seen[(manifest["kind"], meta["namespace"], meta["name"])] = created
        return created

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        patched = super().patch(kind, namespace, name, body)
        self._seen[(kind, namespace, name)] = patched
        return patched

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        self._seen[(kind, namespace, name)] = None
        return super().delete(kind, namespace, name)
