"""The node helper's pure translations of a Pod manifest (no cluster needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.e2e.kubeharness.podspec import DnsTable, NotReadyYet, container_env, expand
from tests.e2e.kubeharness.runtime import rewrite_paths

POD = {"metadata": {"name": "p-1", "namespace": "ns", "uid": "u", "labels": {"app": "x"}}, "spec": {"nodeName": "n"}}


def test_var_expansion_follows_kubernetes_rules() -> None:
    assert expand("$(A)-$(B)-$$(A)-$(MISSING)", {"A": "1", "B": "2"}) == "1-2-$(A)-$(MISSING)"


def test_env_resolves_configmap_secret_and_field_refs_in_order() -> None:
    container = {
        "env": [
            {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "SEC", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "URL", "value": "http://$(IP):80/$(CM)"},
        ]
    }
    env = container_env(
        POD,
        container,
        configmaps={"c": {"data": {"k": "v"}}},
        secrets={"s": {"type": "Opaque", "data": {"pw": base64.b64encode(b"hunter2").decode()}}},
        pod_ip="127.0.1.9",
        host_ip="127.0.255.254",
    )
    assert env == {"CM": "v", "SEC": "hunter2", "IP": "127.0.1.9", "APP": "x", "URL": "http://127.0.1.9:80/v"}


def test_missing_secret_waits_instead_of_starting() -> None:
    container = {"env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(NotReadyYet, match="nope"):
        container_env(POD, container, configmaps={}, secrets={}, pod_ip="", host_ip="")


def test_service_names_in_host_position_are_rewritten_and_plain_words_are_not() -> None:
    dns = DnsTable("ns", hosts={"demo-redis": "127.0.1.5", "demo": "127.0.1.7"})
    assert dns.rewrite("redis://demo-redis:6379/0") == "redis://127.0.1.5:6379/0"
    assert dns.rewrite("redis://:pw@demo-redis.ns.svc.cluster.local:6379") == "redis://:pw@127.0.1.5:6379"
    assert dns.rewrite("demo") == "demo"  # e.g. KUBECRAWL_CRAWL=demo stays the crawl's name
    assert dns.rewrite("demo.ns.svc") == "127.0.1.7"


def test_mount_paths_are_rewritten_only_at_path_boundaries(tmp_path: Path) -> None:
    mounts = {"/data": tmp_path / "d", "/etc/redis": tmp_path / "r"}
    assert rewrite_paths("dir /data\ninclude /etc/redis/x.conf", mounts) == (
        f"dir {tmp_path}/d\ninclude {tmp_path}/r/x.conf"
    )
    assert rewrite_paths("/database /data2 x/data", mounts) == "/database /data2 x/data"
