"""The chart renders, lints and produces what a secure operator install needs, for every documented option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helm import NAMESPACE, Helm, by_kind, one
from .options import DIGEST, OPTIONS


def _operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_chart_lints_clean_with_helm(helm: Helm, option: str) -> None:
    result = helm.lint(OPTIONS[option])
    assert result.returncode == 0, result.output
    assert "0 chart(s) failed" in result.output


def test_default_install_runs_one_leader_elected_operator_for_the_whole_cluster(helm: Helm) -> None:
    objects = helm.render()
    container = _operator_container(objects)
    assert container["image"] == "kubecrawl/operator:0.1.0"
    assert container["args"][0] == "run"
    assert "--all-namespaces" in container["args"]
    assert "--leader-elect" in container["args"] and "--standalone" not in container["args"]
    assert one(objects, "Deployment")["spec"]["replicas"] == 1
    assert one(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert {o["kind"] for o in objects} >= {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"}
    # The only Role: the Lease, in the operator's own namespace.
    assert [r["metadata"]["namespace"] for r in by_kind(objects, "Role")] == [NAMESPACE]
    assert not by_kind(objects, "ClusterKopfPeering") and not by_kind(objects, "CustomResourceDefinition")[1:]


def test_operator_pod_is_non_root_read_only_without_capabilities(helm: Helm) -> None:
    objects = helm.render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = _operator_container(objects)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The read-only root needs a scratch /tmp.
    mounts = {m["mountPath"]: m["name"] for m in _operator_container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_operator_is_probed_for_liveness_and_for_being_the_active_replica(helm: Helm) -> None:
    container = _operator_container(
        helm.render({"operator": {"replicas": 1, "image": {"repository": "x/op"}, "healthPort": 9090}})
    )
    assert "--liveness=http://0.0.0.0:9090/healthz" in container["args"]
    (port,) = container["ports"]
    assert port == {"name": "health", "containerPort": 9090, "protocol": "TCP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_default_worker_image_and_interval_are_passed_to_the_operator(helm: Helm) -> None:
    env = _env(_operator_container(helm.render()))
    assert env["KUBECRAWL_WORKER_IMAGE"] == "kubecrawl/worker:0.1.0"
    assert env["KUBECRAWL_OPERATOR_INTERVAL"] == "15"
    assert (
        _env(_operator_container(helm.render(OPTIONS["interval-and-scheduling"])))["KUBECRAWL_OPERATOR_INTERVAL"]
        == "30"
    )
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_images_can_be_pinned_by_digest_and_pulled_with_a_secret(helm: Helm) -> None:
    objects = helm.render(OPTIONS["images-by-digest"])
    container = _operator_container(objects)
    assert container["image"] == f"registry.example/kc/operator@{DIGEST}"
    assert _env(container)["KUBECRAWL_WORKER_IMAGE"] == "registry.example/kc/worker:1.2.3"
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_namespaced_mode_grants_a_role_only_in_each_watched_namespace(helm: Helm) -> None:
    objects = helm.render(OPTIONS["namespaced"])
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role") if r["metadata"]["namespace"] != NAMESPACE}
    bindings = {
        b["metadata"]["namespace"]: b
        for b in by_kind(objects, "RoleBinding")
        if b["metadata"]["namespace"] != NAMESPACE
    }
    assert set(roles) == set(bindings) == {"crawls-a", "crawls-b"}
    sa = one(objects, "ServiceAccount")
    for binding in bindings.values():
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
        ]
        assert binding["roleRef"]["kind"] == "Role"
    args = _operator_container(objects)["args"]
    assert "--namespace=crawls-a" in args and "--namespace=crawls-b" in args
    assert "--all-namespaces" not in args


@pytest.mark.parametrize("option", ["ha", "namespaced-ha"])
def test_several_replicas_elect_one_active_operator_through_a_lease(helm: Helm, option: str) -> None:
    objects = helm.render(OPTIONS[option])
    args = _operator_container(objects)["args"]
    assert "--leader-elect" in args and "--standalone" not in args
    assert "--lease-duration=15" in args and "--renew-deadline=10" in args and "--retry-period=2" in args
    assert not any(a.startswith("--peering") for a in args)
    assert not by_kind(objects, "ClusterKopfPeering") and not by_kind(objects, "KopfPeering")
    # Standbys never become Ready: a rollout replaces every replica at once instead of waiting for them.
    assert one(objects, "Deployment")["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"},
    }


def test_several_replicas_without_leader_election_are_refused(helm: Helm) -> None:
    result = helm.template({"operator": {"replicas": 2, "leaderElection": {"enabled": False}}})
    assert result.returncode != 0
    assert "needs operator.leaderElection.enabled" in result.output


def test_leader_election_can_be_turned_off_for_one_replica(helm: Helm) -> None:
    objects = helm.render(OPTIONS["no-leader-election"])
    args = _operator_container(objects)["args"]
    assert "--standalone" in args and "--leader-elect" not in args
    assert not by_kind(objects, "Role")


def test_an_existing_service_account_is_bound_instead_of_created(helm: Helm) -> None:
    objects = helm.render(OPTIONS["existing-serviceaccount"])
    assert not by_kind(objects, "ServiceAccount")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "crawler-operator"
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "crawler-operator"


def slave_monitor(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (monitor,) = [m for m in by_kind(objects, "PodMonitor") if m["metadata"]["name"].endswith("-slaves")]
    return monitor


def test_podmonitor_scrapes_slave_metrics_when_enabled(helm: Helm) -> None:
    assert not by_kind(helm.render(), "PodMonitor")
    monitor = slave_monitor(helm.render(OPTIONS["podmonitor"]))
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "slave"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"


def test_podmonitor_in_namespaced_mode_looks_only_at_watched_namespaces(helm: Helm) -> None:
    values = {**OPTIONS["namespaced"], **OPTIONS["podmonitor"]}  # type: ignore[dict-item]
    monitor = slave_monitor(helm.render(values))
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["crawls-a", "crawls-b"]}


def test_podmonitor_also_scrapes_the_operator_whose_metrics_autoscaling_uses(helm: Helm) -> None:
    objects = helm.render(OPTIONS["podmonitor"])
    (monitor,) = [m for m in by_kind(objects, "PodMonitor") if m["metadata"]["name"].endswith("-operator")]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kubecrawl-system"]}
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


def test_notes_tell_the_user_what_to_do_next(helm: Helm) -> None:
    notes = helm.notes()
    for step in (
        "kubectl apply -f examples/crawl-scheduled.yaml",
        "kubectl get crawls -w",
        "kubectl scale crawl/sina-roll --replicas=5",
        "kubecrawl export",
        "helm uninstall",
    ):
        assert step in notes, step
    # the crawl the notes scale is the one they tell the user to apply
    import yaml

    applied = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "crawl-scheduled.yaml").read_text())
    assert applied["metadata"]["name"] == "sina-roll"
    assert "kubecrawl/worker:0.1.0" in notes
    namespaced = helm.notes(OPTIONS["namespaced"])
    assert "crawls-a, crawls-b" in namespaced


def test_every_object_carries_the_standard_labels(helm: Helm) -> None:
    for option, values in OPTIONS.items():
        for obj in helm.render(values):
            if obj["kind"] == "CustomResourceDefinition":
                continue
            labels = obj["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/name") == "kubecrawl-operator", (option, obj["kind"])
            assert labels.get("app.kubernetes.io/managed-by") == "Helm", (option, obj["kind"])


def test_crawl_default_resources_are_the_operators_built_in_ones_and_can_be_overridden(helm: Helm) -> None:
    import json

    from kubecrawl_operator.builders.resources import DEFAULT_RESOURCES, parse_defaults

    env = _env(_operator_container(helm.render()))
    assert parse_defaults(env["KUBECRAWL_OPERATOR_DEFAULT_RESOURCES"]) == DEFAULT_RESOURCES
    slave = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}
    env = _env(_operator_container(helm.render({"crawlDefaults": {"resources": {"slave": slave}}})))
    assert json.loads(env["KUBECRAWL_OPERATOR_DEFAULT_RESOURCES"])["slave"] == slave
    assert parse_defaults(env["KUBECRAWL_OPERATOR_DEFAULT_RESOURCES"])["slave"] == slave
