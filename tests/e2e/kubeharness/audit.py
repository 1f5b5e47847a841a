"""Read the kube-apiserver audit log: who called which API, so RBAC can be proven used and sufficient."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AuditCall:
    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    api_group: str
    code: int
    decision: str  # the authorizer's "allow"/"forbid" (a 403 may also come from admission)


class AuditLog:
    """The JSON-lines audit log written by the apiserver (policy: Metadata for every request)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        out: list[dict[str, object]] = []
        seen: set[str] = set()
        for line in self.path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            audit_id = str(event.get("auditID", ""))
            # Long-running requests (watch) log ResponseStarted and ResponseComplete: count once.
            if audit_id in seen:
                continue
            seen.add(audit_id)
            out.append(event)
        return out

    def calls(self, user: str | None = None) -> list[AuditCall]:
        """(user, verb, resource, subresource, namespace, apiGroup, code) of every resource request."""
        calls = []
        for e in self.events():
            ref = e.get("objectRef") or {}
            assert isinstance(ref, dict)
            username = str((e.get("user") or {}).get("username", ""))  # type: ignore[union-attr]
            if user is not None and username != user:
                continue
            if not ref.get("resource"):
                continue  # non-resource URLs (/readyz, /version, discovery)
            status = e.get("responseStatus") or {}
            annotations = e.get("annotations") or {}
            assert isinstance(annotations, dict)
            calls.append(
                AuditCall(
                    user=username,
                    verb=str(e.get("verb", "")),
                    resource=str(ref.get("resource", "")),
                    subresource=str(ref.get("subresource", "")),
                    namespace=str(ref.get("namespace", "")),
                    api_group=str(ref.get("apiGroup", "")),
                    code=int(status.get("code", 0)) if isinstance(status, dict) else 0,
                    decision=str(annotations.get("authorization.k8s.io/decision", "")),
                )
            )
        return calls

    def forbidden(self, user: str) -> list[AuditCall]:
        """Calls RBAC denied (not 403s from admission, e.g. creating in a terminating namespace)."""
        return [c for c in self.calls(user) if c.decision == "forbid"]
