"""A small synchronous REST client for the node helper (plain JSON, no generated models)."""

from __future__ import annotations

import json
from typing import Any

import requests
import urllib3


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class Kube:
    def __init__(self, server: str, token: str) -> None:
        self.server = server
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.verify = False

    def _do(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        r = self.session.request(
            method,
            f"{self.server}{path}",
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": content_type},
            params=params,
            timeout=30,
            verify=False,  # per request: a session's verify=False loses to REQUESTS_CA_BUNDLE
        )
        if r.status_code >= 400:
            raise ApiError(r.status_code, r.text)
        return r.json() if r.content else None

    def get(self, path: str, **params: str) -> Any:
        return self._do("GET", path, params=params or None)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def post(self, path: str, body: Any) -> Any:
        return self._do("POST", path, body)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self._do("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str, body: Any = None) -> Any:
        try:
            return self._do("DELETE", path, body)
        except ApiError as e:
            if e.status == 404:
                return None
            raise


def wait_for(kube: Kube, path: str, predicate: Any, *, timeout: float = 90, what: str = "") -> Any:
    """Poll GET path until predicate(obj) is truthy; returns the object. 404 counts as not yet."""
    from .procs import wait_until

    def probe() -> Any:
        obj = kube.get_or_none(path)
        return obj if obj is not None and predicate(obj) else None

    return wait_until(probe, timeout=timeout, interval=0.2, what=what or path)


def wait_gone(kube: Kube, path: str, *, timeout: float = 90) -> None:
    from .procs import wait_until

    wait_until(lambda: kube.get_or_none(path) is None, timeout=timeout, interval=0.2, what=f"{path} deleted")


def condition(obj: Any, kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None
