"""Bad values fail at install time with a message that names the setting (values.schema.json)."""

from __future__ import annotations

from typing import Any

import pytest

from .helm import Helm

BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "zero-replicas": ({"operator": {"replicas": 0, "image": {"repository": "kubecrawl/operator"}}}, "replicas"),
    "replicas-as-string": (
        {"operator": {"replicas": "two", "image": {"repository": "kubecrawl/operator"}}},
        "replicas",
    ),
    "unknown-watch-mode": ({"watch": {"mode": "everywhere"}}, "mode"),
    "namespaced-without-namespaces": ({"watch": {"mode": "namespaces", "namespaces": []}}, "namespaces"),
    "bad-namespace-name": ({"watch": {"mode": "namespaces", "namespaces": ["Crawls_A"]}}, "namespaces"),
    "misspelt-top-level-key": ({"podMonitr": {"enabled": True}}, "podMonitr"),
    "misspelt-operator-key": (
        {"operator": {"replicas": 1, "image": {"repository": "kubecrawl/operator"}, "replica": 2}},
        "replica",
    ),
    "root-operator": ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    "privilege-escalation": ({"securityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation"),
    "privileged-health-port": (
        {"operator": {"replicas": 1, "image": {"repository": "kubecrawl/operator"}, "healthPort": 80}},
        "healthPort",
    ),
    "bad-digest": ({"worker": {"image": {"repository": "kubecrawl/worker", "digest": "latest"}}}, "digest"),
    "bad-pull-policy": (
        {"operator": {"replicas": 1, "image": {"repository": "kubecrawl/operator", "pullPolicy": "Sometimes"}}},
        "pullPolicy",
    ),
    "zero-reconcile-interval": (
        {"operator": {"replicas": 1, "image": {"repository": "kubecrawl/operator"}, "reconcileIntervalSeconds": 0}},
        "reconcileIntervalSeconds",
    ),
    "uppercase-image": ({"worker": {"image": {"repository": "Kubecrawl/Worker"}}}, "repository"),
    "bad-scrape-interval": ({"podMonitor": {"enabled": True, "interval": "often"}}, "interval"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_rejected_with_a_clear_message(helm: Helm, case: str) -> None:
    values, setting = BAD_VALUES[case]
    for result in (helm.template(values), helm.lint(values)):
        assert result.returncode != 0, f"{case} was accepted:\n{result.stdout[:2000]}"
        assert "values don't meet the specifications of the schema" in result.output, result.output
        assert setting in result.output, result.output


def test_set_on_the_command_line_is_checked_too(helm: Helm) -> None:
    result = helm.template(None, "--set", "watch.mode=nowhere")
    assert result.returncode != 0
    assert "watch.mode" in result.output or "mode" in result.output
