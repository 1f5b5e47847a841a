"""Every (API group, resource, verb) the operator uses: the Helm chart's ClusterRole must match this.

`kube.Kube` refuses calls outside this list, so the list cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from kubecrawl_operator.models import GROUP, PLURAL

#: Rules in the shape of rbac.authorization.k8s.io/v1 PolicyRule.
RULES: list[dict[str, Any]] = [
    # The Crawl itself: kopf watches it, patches finalizers/annotations and writes status.
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
    # kopf posts Kubernetes Events about handled objects (core/v1 only: kopf 1.45 never writes
    # events.k8s.io, the e2e audit log shows it); the operator lists `FailedCreate` events of its
    # StatefulSet and Jobs (pods refused by a quota or admission), which no status field reports.
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "list"]},
    # Children. Secrets: the generated Redis password (never patched) and an external Redis password.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": ["get", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {
        "apiGroups": ["apps"],
        "resources": ["statefulsets", "deployments"],
        "verbs": ["get", "create", "patch", "delete"],
    },
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "create", "delete"]},
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "create", "patch", "delete"]},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "create", "patch", "delete"],
    },
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["get", "create", "patch", "delete"]},
]

#: Leader election (`--leader-elect`): the operator's own Lease, in the operator's namespace only (the
#: chart's Role there). `create` cannot be limited to a name (the object does not exist yet);
#: `get`/`patch` are limited to the Lease's name (the chart fills in `resourceNames`).
LEASE_GROUP = "coordination.k8s.io"
LEASE_RULES: list[dict[str, Any]] = [
    {"apiGroups": [LEASE_GROUP], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": [LEASE_GROUP], "resources": ["leases"], "verbs": ["get", "patch"], "resourceNames": ["<lease>"]},
]

#: Only with kopf's own peering (`--peering NAME`; not used by the chart): kopf's peering resources.
PEERING_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["kopfpeerings", "clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    },
]


def allowed_lease(verb: str) -> bool:
    return any(verb in rule["verbs"] for rule in LEASE_RULES)


def allowed(group: str, resource: str, verb: str) -> bool:
    return any(group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"] for rule in RULES)
