"""The chart grants the operator exactly the API calls its code makes: nothing missing, nothing extra.

`kubecrawl_operator.rbac.RULES` is the operator's own list; its Kubernetes client refuses any call
outside it, so matching it here means matching the code.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubecrawl_operator import rbac

from .helm import Helm, by_kind
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
    """Per ClusterRole/Role (by namespace, '*' for cluster-wide), the permissions it grants."""
    out: dict[str, set[Triple]] = {}
    for kind in ("ClusterRole", "Role"):
        for role in by_kind(objects, kind):
            out[role["metadata"].get("namespace", "*")] = triples(role["rules"])
    return out


def test_cluster_mode_grants_exactly_the_operators_api_calls(helm: Helm) -> None:
    assert granted(helm.render()) == {"*": triples(rbac.RULES)}


def test_namespaced_mode_grants_exactly_the_operators_api_calls_in_each_namespace(helm: Helm) -> None:
    expected = triples(rbac.RULES)
    assert granted(helm.render(OPTIONS["namespaced"])) == {"crawls-a": expected, "crawls-b": expected}


@pytest.mark.parametrize(
    "option,scope,peering_resource",
    [
        ("peering", "*", "clusterkopfpeerings"),
        ("namespaced-peering", "crawls", "kopfpeerings"),
    ],
)
def test_peering_adds_only_kopfs_peering_resource(helm: Helm, option: str, scope: str, peering_resource: str) -> None:
    grants = granted(helm.render(OPTIONS[option]))
    extra = grants[scope] - triples(rbac.RULES)
    assert extra == {t for t in triples(rbac.PEERING_RULES) if t[1] == peering_resource}
    assert extra, "peering needs its resource"


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
