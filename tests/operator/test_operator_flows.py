"""The operator against a Kubernetes API: a Crawl becomes its children, and every spec change converges."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import OperatorProcess

RULES = {
    "name": "news",
    "start": {"urls": ["http://127.0.0.1:1/"]},
    "callbacks": {"parse": {"follow": [{"css": "a::attr(href)", "callback": "parse"}]}},
}
CHILDREN = [
    ("Secret", "news-redis-auth"),
    ("Service", "news-redis"),
    ("StatefulSet", "news-redis"),
    ("NetworkPolicy", "news-redis"),
    ("ConfigMap", "news-spider"),
    ("Deployment", "news-slave"),
]


def seed_jobs(cluster: Cluster, crawl: str) -> list[dict[str, Any]]:
    return cluster.seed_jobs(crawl)


def test_created_crawl_gets_its_children_owned_and_labelled(cluster: Cluster, operator: OperatorProcess) -> None:
    crawl = cluster.create_crawl("news", {"spider": {"rules": RULES}, "replicas": 2})
    uid = crawl["metadata"]["uid"]
    for kind, name in CHILDREN:
        child = eventually(lambda k=kind, n=name: cluster.get(k, n), f"{kind} {name}")
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Crawl", "news", uid, True)
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubecrawl-operator"
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == "news"
    jobs = eventually(lambda: seed_jobs(cluster, "news"), "the seed job")
    assert len(jobs) == 1 and jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "crawl",
        "--role",
        "master",
    ]
    deployment = cluster.get("Deployment", "news-slave")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    status = cluster.wait_phase("news", "Pending")
    assert (
        status["selector"]
        == "app.kubernetes.io/component=slave,app.kubernetes.io/instance=news,app.kubernetes.io/name=kubecrawl"
    )
    assert cluster.condition("news", "Ready")["reason"] == "RedisNotReady"


def test_children_as_stored_by_the_api_are_valid_kubernetes_objects(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "schedule": "*/10 * * * *"})
    eventually(lambda: cluster.get("CronJob", "news-schedule"), "the CronJob")
    for kind, name in [*CHILDREN, ("CronJob", "news-schedule")]:
        child = eventually(lambda k=kind, n=name: cluster.get(k, n), f"{kind} {name}")
        child.pop("status", None)
        kubernetes_validate.validate(child, "1.33", strict=False)
    for job in seed_jobs(cluster, "news"):
        job.pop("status", None)
        kubernetes_validate.validate(job, "1.33", strict=False)


def test_generated_redis_password_is_in_a_secret_and_never_on_a_command_line(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}})
    secret = eventually(lambda: cluster.get("Secret", "news-redis-auth"), "the auth secret")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) >= 32
    assert f"requirepass {password}" in base64.b64decode(secret["data"]["redis.conf"]).decode()
    deployment = eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBECRAWL_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "news-redis-auth",
        "key": "password",
    }
    assert env["KUBECRAWL_REDIS_URL"]["value"] == "redis://news-redis:6379/0"
    assert password not in str(container["args"]) and password not in str(env["KUBECRAWL_REDIS_URL"])


def test_changing_replicas_patches_the_slave_deployment(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "replicas": 1})
    eventually(lambda: (cluster.get("Deployment", "news-slave") or {}).get("spec", {}).get("replicas") == 1, "1 slave")
    cluster.patch("Crawl", "news", {"spec": {"replicas": 4}})
    eventually(lambda: cluster.get("Deployment", "news-slave")["spec"]["replicas"] == 4, "4 slaves")


def test_scale_subresource_scales_the_slaves(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "replicas": 1})
    eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    cluster.patch("Crawl", "news", {"spec": {"replicas": 3}}, sub="scale")  # what `kubectl scale` sends
    eventually(lambda: cluster.get("Deployment", "news-slave")["spec"]["replicas"] == 3, "3 slaves")


def test_image_resources_and_politeness_changes_propagate(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}})
    eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    cluster.patch(
        "Crawl",
        "news",
        {
            "spec": {
                "image": "registry.local/kubecrawl/worker:2",
                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
                "politeness": {"concurrency": 5, "delaySeconds": 1.5},
            }
        },
    )

    def propagated() -> bool:
        container = cluster.get("Deployment", "news-slave")["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        return (
            container["image"] == "registry.local/kubecrawl/worker:2"
            and container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
            and env["KUBECRAWL_CONCURRENCY"] == "5"
            and env["KUBECRAWL_DOWNLOAD_DELAY"] == "1.5"
        )

    eventually(propagated, "image, resources and politeness on the slaves")


def test_suspend_scales_slaves_to_zero_and_pauses_the_schedule_and_resume_restores(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "replicas": 3, "schedule": "*/10 * * * *"})
    eventually(lambda: cluster.get("CronJob", "news-schedule"), "the CronJob")
    cluster.patch("Crawl", "news", {"spec": {"suspend": True}})
    cluster.wait_phase("news", "Suspended")
    eventually(lambda: cluster.get("Deployment", "news-slave")["spec"]["replicas"] == 0, "0 slaves")
    eventually(lambda: cluster.get("CronJob", "news-schedule")["spec"]["suspend"] is True, "a suspended CronJob")
    secret_before = cluster.get("Secret", "news-redis-auth")
    cluster.patch("Crawl", "news", {"spec": {"suspend": False}})
    eventually(lambda: cluster.get("Deployment", "news-slave")["spec"]["replicas"] == 3, "3 slaves again")
    # No round may start before the first seeding has finished: the CronJob waits for the seed Job.
    assert cluster.get("CronJob", "news-schedule")["spec"]["suspend"] is True
    cluster.finish_seed_job("news")
    eventually(lambda: cluster.get("CronJob", "news-schedule")["spec"]["suspend"] is False, "an active CronJob")
    assert cluster.get("Secret", "news-redis-auth")["data"] == secret_before["data"]  # same Redis, same data


def test_removing_the_schedule_deletes_the_cronjob(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "schedule": "@hourly"})
    eventually(lambda: cluster.get("CronJob", "news-schedule"), "the CronJob")
    cluster.patch("Crawl", "news", {"spec": {"schedule": None}})
    eventually(lambda: cluster.get("CronJob", "news-schedule") is None, "the CronJob gone")


def test_child_deleted_or_edited_by_hand_is_restored(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "replicas": 2})
    eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    eventually(lambda: cluster.get("NetworkPolicy", "news-redis"), "the NetworkPolicy")
    cluster.delete("NetworkPolicy", "news-redis")
    cluster.patch("Deployment", "news-slave", {"spec": {"replicas": 9}})
    eventually(lambda: cluster.get("NetworkPolicy", "news-redis"), "the NetworkPolicy restored")
    eventually(lambda: cluster.get("Deployment", "news-slave")["spec"]["replicas"] == 2, "replicas restored to 2")


def test_spider_change_reseeds_with_a_new_seed_job(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}})
    first = eventually(lambda: seed_jobs(cluster, "news"), "the first seed job")[0]["metadata"]["name"]
    cluster.patch(
        "Crawl", "news", {"spec": {"spider": {"rules": {**RULES, "start": {"urls": ["http://127.0.0.1:2/"]}}}}}
    )
    jobs = eventually(
        lambda: (
            (js := seed_jobs(cluster, "news"))
            and [j["metadata"]["name"] for j in js] != [first]
            and len(js) == 1
            and js
        ),
        "one new seed job replacing the old one",
    )
    assert jobs[0]["metadata"]["name"].startswith("news-seed-")


def test_operator_restart_converges_without_duplicates_or_a_new_password(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "replicas": 2})
    eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    secret = cluster.get("Secret", "news-redis-auth")
    jobs = eventually(lambda: seed_jobs(cluster, "news"), "the seed job")
    operator.stop()
    cluster.patch("Crawl", "news", {"spec": {"replicas": 5}})  # changed while the operator was down
    operator.start()
    eventually(lambda: cluster.get("Deployment", "news-slave")["spec"]["replicas"] == 5, "5 slaves after restart")
    assert cluster.get("Secret", "news-redis-auth")["data"] == secret["data"]
    assert [j["metadata"]["name"] for j in seed_jobs(cluster, "news")] == [j["metadata"]["name"] for j in jobs]


def test_crawls_carry_no_finalizer_so_nothing_blocks_a_delete(cluster: Cluster, operator: OperatorProcess) -> None:
    """Owner references collect the children. The removal of an earlier version's finalizer (the
    migration) and a delete with the operator stopped run on the real API server:
    tests/e2e/test_kubecrawl_lifecycle.py (the emulator cannot remove a finalizer by JSON patch)."""
    cluster.create_crawl("news", {"spider": {"rules": RULES}})
    eventually(lambda: cluster.get("Deployment", "news-slave"), "children")
    eventually(lambda: cluster.status("news").get("phase"), "a status")
    assert not cluster.get("Crawl", "news")["metadata"].get("finalizers")
    cluster.delete("Crawl", "news")
    eventually(lambda: cluster.get("Crawl", "news") is None, "the crawl gone")


def test_last_schedule_time_is_reported_from_the_cronjob(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "schedule": "0 0 1 1 *"})
    eventually(lambda: cluster.get("CronJob", "news-schedule"), "the CronJob")
    # What the CronJob controller records when it starts a round.
    cluster.patch("CronJob", "news-schedule", {"status": {"lastScheduleTime": "2026-11-28T10:00:00Z"}}, sub="status")
    eventually(lambda: cluster.status("news").get("lastScheduleTime") == "2026-11-28T10:00:00Z", "lastScheduleTime")


def test_the_example_crawl_becomes_a_running_crawl(cluster: Cluster, operator: OperatorProcess) -> None:
    """`kubectl apply -f examples/crawl.yaml` with the operator running: children and a readable status."""
    example = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "crawl.yaml").read_text())
    name = example["metadata"]["name"]
    cluster.create("Crawl", example)
    deployment = eventually(lambda: cluster.get("Deployment", f"{name}-slave"), "the slaves")
    assert deployment["spec"]["replicas"] == example["spec"]["replicas"]
    assert (
        eventually(lambda: cluster.get("StatefulSet", f"{name}-redis"), "the Redis")["spec"]["volumeClaimTemplates"][0][
            "spec"
        ]["resources"]["requests"]["storage"]
        == "2Gi"
    )
    status = cluster.wait_phase(name, "Pending")
    assert {c["type"] for c in status["conditions"]} == {
        "Ready",
        "Seeded",
        "Progressing",
        "Degraded",
        "RoundStuck",
        "Complete",
        "SecurityContextEnforced",
        "ExistingData",
        "DeliveryFailed",
    }
