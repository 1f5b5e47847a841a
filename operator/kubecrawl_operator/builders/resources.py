"""Container resources of a crawl's pods: the operator's defaults, overridden key by key by the spec.

Every pod gets requests *and* limits for cpu and memory, so a namespace whose ResourceQuota demands
them (`must specify limits.memory`) admits it, and Redis is never BestEffort. Redis' `maxmemory` is
derived from its memory limit: with `noeviction` a full Redis refuses writes (the workers count and
report the error) instead of being OOM-killed mid-write or silently dropping queue entries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

#: Built-in defaults (the chart's `crawlDefaults.resources` replaces them operator-wide).
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "redis": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    "master": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    "slave": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
}
ROLES = tuple(DEFAULT_RESOURCES)
#: Share of the Redis container's memory limit given to the data set (`maxmemory`). The rest covers
#: the copy-on-write pages of an AOF rewrite fork, client buffers and allocator fragmentation.
REDIS_MAXMEMORY_SHARE = Decimal("0.75")


def parse_defaults(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """`{"redis": {...}, "master": {...}, "slave": {...}}` as JSON (roles left out keep the built-in)."""
    raw = json.loads(text) if text.strip() else {}
    if not isinstance(raw, dict) or set(raw) - set(ROLES):
        raise ValueError(f"default resources must be an object with keys among {', '.join(ROLES)}")
    out = {role: {k: dict(v) for k, v in DEFAULT_RESOURCES[role].items()} for role in ROLES}
    for role, value in raw.items():
        if not isinstance(value, dict) or set(value) - {"requests", "limits"}:
            raise ValueError(f"default resources of {role}: only requests and limits")
        out[role] = {section: _quantities(f"{role}.{section}", value.get(section) or {}) for section in value}
    return out


def _quantities(where: str, values: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name, quantity in values.items():
        try:
            parse_quantity(quantity)
        except ValueError as exc:
            raise ValueError(f"{where}.{name}: {quantity!r} is not a quantity") from exc
        out[str(name)] = str(quantity)
    return out


def effective_resources(default: Mapping[str, Mapping[str, str]], override: Any) -> dict[str, dict[str, str]]:
    """`override` (a spec ResourceRequirements or None) merged key by key over `default`.

    A request raised above a *default* limit raises that limit with it (asking for 2Gi must not be
    refused for a 1Gi limit the user never set); a limit the user set below their request is theirs
    to fix, and the API server says so.
    """
    user = {
        k: {rk: str(rv) for rk, rv in v.items()}
        for k, v in (override.model_dump(exclude_none=True) if override else {}).items()
    }
    requests = {**default.get("requests", {}), **user.get("requests", {})}
    limits = {**default.get("limits", {}), **user.get("limits", {})}
    for name, request in user.get("requests", {}).items():
        if (
            name in limits
            and name not in user.get("limits", {})
            and parse_quantity(request) > parse_quantity(limits[name])
        ):
            limits[name] = request
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def redis_maxmemory(resources: Mapping[str, Mapping[str, str]]) -> int | None:
    """Bytes for Redis' `maxmemory`: a share of the memory limit (None without a limit)."""
    limit = (resources.get("limits") or {}).get("memory")
    if limit is None:
        return None
    return int(parse_quantity(limit) * REDIS_MAXMEMORY_SHARE)
