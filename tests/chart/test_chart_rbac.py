"""The chart grants the operator exactly the API calls its code makes: nothing missing, nothing extra.

`kubecrawl_operator.rbac.RULES` is the operator's own list; its Kubernetes client refuses any call
outside it, so matching it here means matching the code.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubecrawl_operator import rbac

from .helm import NAMESPACE, RELEASE, Helm, by_kind
from .options import OPTIONS

Triple = tuple[str, str, str]


def triples(rules: list[dict[str, Any]]) -> set[Triple]:
    """Flatten PolicyRules into (apiGroup, resource, verb) permissions."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def granted(objects: list[dict[str, Any]]) -> dict[str, set[Triple]]:
    """Per namespace ('*' for cluster-wide), the permissions its ClusterRole/Roles grant together."""
    out: dict[str, set[Triple]] = {}
    for kind in ("ClusterRole", "Role"):
        for role in by_kind(objects, kind):
            out.setdefault(role["metadata"].get("namespace", "*"), set()).update(triples(role["rules"]))
    return out


LEASE = triples(rbac.LEASE_RULES)


def canonical(rule: dict[str, Any]) -> str:
    return json.dumps(rule, sort_keys=True)


def test_cluster_mode_grants_exactly_the_operators_api_calls(helm: Helm) -> None:
    assert granted(helm.render()) == {"*": triples(rbac.RULES), NAMESPACE: LEASE}


def test_namespaced_mode_grants_exactly_the_operators_api_calls_in_each_namespace(helm: Helm) -> None:
    expected = triples(rbac.RULES)
    assert granted(helm.render(OPTIONS["namespaced"])) == {"crawls-a": expected, "crawls-b": expected, NAMESPACE: LEASE}


@pytest.mark.parametrize("option", ["ha", "namespaced-ha"])
def test_several_replicas_add_only_the_lease_in_the_operators_namespace(helm: Helm, option: str) -> None:
    grants = granted(helm.render(OPTIONS[option]))
    assert grants.pop(NAMESPACE) == LEASE
    assert grants and all(g == triples(rbac.RULES) for g in grants.values())


def test_lease_rules_name_the_one_lease_the_operator_is_told_to_use(helm: Helm) -> None:
    objects = helm.render(OPTIONS["ha"])
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["namespace"] == NAMESPACE]
    (deployment,) = by_kind(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    (lease_arg,) = [a for a in args if a.startswith("--leader-elect-name=")]
    lease = lease_arg.split("=", 1)[1]
    assert lease.startswith(RELEASE)
    expected = [{**rule, "resourceNames": [lease]} if "resourceNames" in rule else rule for rule in rbac.LEASE_RULES]
    assert sorted(role["rules"], key=canonical) == sorted(expected, key=canonical)
    # POD_NAMESPACE (the Lease's namespace) is the release namespace the Role is in.
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_without_leader_election_there_is_no_lease_permission(helm: Helm) -> None:
    assert granted(helm.render(OPTIONS["no-leader-election"])) == {"*": triples(rbac.RULES)}


def test_no_rule_uses_wildcards_or_escalation_verbs(helm: Helm) -> None:
    for option, values in OPTIONS.items():
        for perms in granted(helm.render(values)).values():
            for group, resource, verb in perms:
                assert "*" not in (group, resource, verb), option
                assert verb not in ("escalate", "bind", "impersonate"), option
                assert resource not in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"), option


def test_secrets_are_never_listed_or_watched(helm: Helm) -> None:
    """A list/watch on secrets would let the operator read every Secret in its scope."""
    for perms in granted(helm.render()).values():
        assert {v for g, r, v in perms if r == "secrets"} <= {"get", "create"}
