"""The harness itself, with no kubecrawl: real controllers drive pods that the node helper runs."""

from __future__ import annotations

import os

import pytest
import requests

from tests.e2e.kubeharness.kube import Kube, condition, wait_for, wait_gone
from tests.e2e.kubeharness.node import Node
from tests.e2e.kubeharness.procs import wait_until

PY = "python:3.11"


def http_server(name: str, replicas: int, labels: dict[str, str]) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": PY,
                            "command": ["python3", "-m", "http.server", "8000"],
                            "ports": [{"name": "http", "containerPort": 8000}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                        }
                    ],
                    "terminationGracePeriodSeconds": 5,
                },
            },
        },
    }


def pod_ips(kube: Kube, ns: str, selector: str) -> list[str]:
    pods = kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
    return [p["status"].get("podIP") for p in pods if not p["metadata"].get("deletionTimestamp")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_deployment_pods_run_as_processes_and_become_ready(kube: Kube, node: Node, namespace: str) -> None:
    kube.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", http_server("web", 2, {"app": "web"}))

    dep = wait_for(
        kube,
        f"/apis/apps/v1/namespaces/{namespace}/deployments/web",
        lambda d: d.get("status", {}).get("readyReplicas") == 2,
        what="2 ready replicas",
    )

    assert dep["status"]["availableReplicas"] == 2
    ips = pod_ips(kube, namespace, "app=web")
    assert len(set(ips)) == 2, f"each pod has its own address: {ips}"
    for ip in ips:
        assert ip.startswith("127.") and ip != "127.0.0.1"
        assert requests.get(f"http://{ip}:8000/", timeout=5).status_code == 200


def job(name: str, script: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
                }
            },
        },
    }


def test_job_that_exits_zero_completes(kube: Kube, node: Node, namespace: str) -> None:
    kube.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", job("ok", "exit 0"))

    done = wait_for(
        kube,
        f"/apis/batch/v1/namespaces/{namespace}/jobs/ok",
        lambda j: condition(j, "Complete") == "True",
        what="Job ok Complete",
    )

    assert done["status"]["succeeded"] == 1


def test_job_that_exits_three_fails_with_the_exit_code(kube: Kube, node: Node, namespace: str) -> None:
    kube.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", job("bad", "exit 3"))

    failed = wait_for(
        kube,
        f"/apis/batch/v1/namespaces/{namespace}/jobs/bad",
        lambda j: condition(j, "Failed") == "True",
        what="Job bad Failed",
    )

    assert failed["status"]["failed"] == 1
    (pod,) = kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="job-name=bad")["items"]
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_statefulset_pod_is_reachable_by_its_dns_name(kube: Kube, node: Node, namespace: str) -> None:
    labels = {"app": "db"}
    kube.post(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 8000}]},
        },
    )
    template = http_server("db", 1, labels)["spec"]["template"]
    kube.post(
        f"/apis/apps/v1/namespaces/{namespace}/statefulsets",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": labels}, "template": template},
        },
    )
    fetch = "import os, urllib.request as u; [u.urlopen(os.environ[k], timeout=5).read() for k in ('PEER', 'SVC')]"
    client = job("client", "")
    client["spec"]["template"]["spec"]["containers"] = [
        {
            "name": "main",
            "image": PY,
            "command": ["python3", "-c", fetch],
            "env": [
                {"name": "PEER", "value": f"http://db-0.db.{namespace}.svc.cluster.local:8000/"},
                {"name": "SVC", "value": "http://db:8000/"},
            ],
        }
    ]
    kube.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", client)

    done = wait_for(
        kube,
        f"/apis/batch/v1/namespaces/{namespace}/jobs/client",
        lambda j: condition(j, "Complete") == "True" or condition(j, "Failed") == "True",
        what="client Job finished",
    )

    (pod,) = kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="job-name=client")["items"]
    assert condition(done, "Complete") == "True", node.logs(namespace, pod["metadata"]["name"])
    (db,) = kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="app=db")["items"]
    assert db["metadata"]["name"] == "db-0"
    env = node.runner(namespace, pod["metadata"]["name"]).containers[0].launch.env
    assert env["PEER"] == f"http://{db['status']['podIP']}:8000/"


def test_env_volumes_and_var_expansion_reach_the_process(kube: Kube, node: Node, namespace: str) -> None:
    kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"greeting": "hello", "file.txt": "from-a-file"},
        },
    )
    kube.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}},
    )
    pod = job("env", "")
    pod["spec"]["template"]["spec"]["containers"] = [
        {
            "name": "main",
            "image": "busybox",
            "command": ["sh", "-c"],
            "args": ['echo "$(GREETING) $PASSWORD $POD_NAME $POD_IP"; cat /etc/cfg/file.txt'],
            "env": [
                {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
        }
    ]
    pod["spec"]["template"]["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "cfg"}}]
    kube.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", pod)

    wait_for(
        kube,
        f"/apis/batch/v1/namespaces/{namespace}/jobs/env",
        lambda j: condition(j, "Complete") == "True",
        what="env Job Complete",
    )

    (p,) = kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="job-name=env")["items"]
    name, ip = p["metadata"]["name"], p["status"]["podIP"]
    assert node.logs(namespace, name).split("\n")[:2] == [f"hello s3cret {name} {ip}", "from-a-file"]


def test_scaled_down_deployment_stops_its_processes(kube: Kube, node: Node, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    kube.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", http_server("web", 3, {"app": "web"}))
    wait_for(kube, path, lambda d: d.get("status", {}).get("readyReplicas") == 3, what="3 ready replicas")
    before = {pid for pids in node.live_pids(namespace).values() for pid in pids.values()}
    assert len(before) == 3

    kube.merge_patch(f"{path}/scale", {"spec": {"replicas": 1}})

    wait_until(lambda: len(node.live_pids(namespace)) == 1, timeout=60, what="one pod process left")
    after = {pid for pids in node.live_pids(namespace).values() for pid in pids.values()}
    assert after < before
    assert not any(alive(pid) for pid in before - after)
    wait_until(lambda: len(pod_ips(kube, namespace, "app=web")) == 1, timeout=60, what="one pod object left")


def test_deleting_the_owner_lets_the_garbage_collector_remove_children(kube: Kube, node: Node, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    kube.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", http_server("web", 2, {"app": "web"}))
    wait_for(kube, path, lambda d: d.get("status", {}).get("readyReplicas") == 2, what="2 ready replicas")
    pids = {pid for p in node.live_pids(namespace).values() for pid in p.values()}

    kube.delete(path, {"propagationPolicy": "Background"})

    wait_until(
        lambda: not kube.get(f"/apis/apps/v1/namespaces/{namespace}/replicasets")["items"],
        timeout=60,
        what="ReplicaSets collected",
    )
    wait_until(lambda: not kube.get(f"/api/v1/namespaces/{namespace}/pods")["items"], timeout=60, what="pods collected")
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30, what="processes stopped")


@pytest.mark.timeout(300)
def test_deleted_namespace_takes_its_pods_and_processes(kube: Kube, node: Node) -> None:
    ns = "doomed-ns"
    kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    wait_until(
        lambda: kube.get_or_none(f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
        timeout=60,
        what="default ServiceAccount",
    )
    kube.post(f"/apis/apps/v1/namespaces/{ns}/deployments", http_server("web", 1, {"app": "web"}))
    wait_until(lambda: len(node.live_pids(ns)) == 1, timeout=60, what="pod running")
    pids = {pid for p in node.live_pids(ns).values() for pid in p.values()}

    kube.delete(f"/api/v1/namespaces/{ns}")

    wait_gone(kube, f"/api/v1/namespaces/{ns}", timeout=240)
    assert not any(alive(pid) for pid in pids)
