"""The Crawl's status read from a real redis-server written by the worker's own store: stats, phases,
scale to zero when a round is done and back up when the next round seeds, and what a user sees when
something is wrong (condition, reason, event, no churn)."""

from __future__ import annotations

import base64
from typing import Any

from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import OperatorProcess, RedisServer
from tests.operator.test_operator_flows import RULES
from tests.operator.worker_store import WorkerStore


def external_redis_crawl(cluster: Cluster, redis_server: RedisServer, name: str = "news", **spec: Any) -> WorkerStore:
    password = base64.b64encode(redis_server.password.encode()).decode()
    cluster.create(
        "Secret",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ext-redis"}, "data": {"password": password}},
    )
    cluster.create_crawl(
        name,
        {
            "spider": {"rules": RULES},
            "redis": {"url": redis_server.url, "passwordSecretRef": {"name": "ext-redis", "key": "password"}},
            **spec,
        },
    )
    return WorkerStore(redis_server.url, redis_server.password, name)


def deployment_replicas(cluster: Cluster, name: str = "news") -> int | None:
    return ((cluster.get("Deployment", f"{name}-slave") or {}).get("spec") or {}).get("replicas")


def test_status_stats_come_from_the_crawls_redis(
    cluster: Cluster, operator: OperatorProcess, redis_server: RedisServer
) -> None:
    store = external_redis_crawl(cluster, redis_server, replicas=2)
    store.seed_round([f"http://127.0.0.1:1/p{i}" for i in range(10)])
    cluster.finish_seed_job("news")  # the master exits 0 after seeding
    store.crawl_pages(4, items_per_page=2, errors=1)
    store.lease_without_ack(3)
    status = eventually(
        # wait for a pass that saw the lease too: a pass between crawl_pages and lease_without_ack
        # legitimately reports pages=4 with nothing in flight
        lambda: (
            (s := cluster.status("news")).get("stats", {}).get("pages") == 4 and s["stats"].get("inFlight") == 3 and s
        ),
        "stats in status",
    )
    stats = status["stats"]
    assert (stats["queued"], stats["inFlight"], stats["pages"], stats["items"], stats["errors"]) == (3, 3, 4, 8, 1)
    assert stats["seededRound"] == 1 and stats["workers"] == 1
    assert status["phase"] == "Running"
    assert cluster.condition("news", "Seeded")["status"] == "True"
    assert deployment_replicas(cluster) == 2


def test_external_redis_deploys_no_redis_of_its_own(
    cluster: Cluster, operator: OperatorProcess, redis_server: RedisServer
) -> None:
    external_redis_crawl(cluster, redis_server)
    deployment = eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBECRAWL_REDIS_URL"]["value"] == redis_server.url
    assert env["KUBECRAWL_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "ext-redis", "key": "password"}
    for kind, name in (("StatefulSet", "news-redis"), ("Service", "news-redis"), ("Secret", "news-redis-auth")):
        assert cluster.get(kind, name) is None, f"{kind} {name} should not exist with an external Redis"


def test_one_shot_crawl_completes_and_scales_slaves_to_zero_keeping_redis(
    cluster: Cluster, operator: OperatorProcess, redis_server: RedisServer
) -> None:
    store = external_redis_crawl(cluster, redis_server, replicas=3)
    store.seed_round(["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"])
    cluster.finish_seed_job("news")  # the master exits 0 after seeding
    eventually(
        lambda: cluster.status("news").get("phase") == "Running" and deployment_replicas(cluster) == 3,
        "running with 3 slaves",
    )
    store.crawl_pages(2)
    cluster.wait_phase("news", "Completed")
    eventually(lambda: deployment_replicas(cluster) == 0, "slaves scaled to 0")
    assert cluster.condition("news", "Ready")["reason"] == "Completed"
    assert redis_server.client().xlen("kc:{news}:items") == 2  # the items stay for export


def test_scale_to_zero_can_be_switched_off(
    cluster: Cluster, operator: OperatorProcess, redis_server: RedisServer
) -> None:
    store = external_redis_crawl(cluster, redis_server, replicas=2, scaleToZero=False)
    store.seed_round(["http://127.0.0.1:1/a"])
    cluster.finish_seed_job("news")  # the master exits 0 after seeding
    store.crawl_pages(1)
    cluster.wait_phase("news", "Completed")
    assert deployment_replicas(cluster) == 2


def test_scheduled_crawl_idles_at_zero_between_rounds_and_scales_up_when_a_round_seeds(
    cluster: Cluster, operator: OperatorProcess, redis_server: RedisServer
) -> None:
    store = external_redis_crawl(cluster, redis_server, replicas=2, schedule="*/5 * * * *")
    store.seed_round(["http://127.0.0.1:1/roll"])
    cluster.finish_seed_job("news")  # the master exits 0 after seeding
    store.crawl_pages(1)
    cluster.wait_phase("news", "Idle")
    eventually(lambda: deployment_replicas(cluster) == 0, "no slaves between rounds")
    store.seed_round(["http://127.0.0.1:1/roll"], finish=False)  # the CronJob's master starts round 2
    cluster.wait_phase("news", "Seeding")
    eventually(lambda: deployment_replicas(cluster) == 2, "slaves back for round 2")


def test_unreachable_external_redis_is_reported_with_an_event(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "redis": {"url": "redis://127.0.0.1:1/0"}})
    ready = eventually(
        lambda: (c := cluster.condition("news", "Ready")).get("reason") == "RedisUnreachable" and c, "RedisUnreachable"
    )
    assert ready["status"] == "False" and "spec.redis.url" in ready["message"]
    assert cluster.condition("news", "Degraded")["status"] == "True"
    events = eventually(
        lambda: [e for e in cluster.events("news") if e.get("reason") == "RedisUnreachable"], "a Warning event"
    )
    assert events[0]["type"] == "Warning"


def test_bad_spider_rules_fail_with_an_actionable_condition_and_create_nothing(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    # Well-formed for the schema, but the follow rule names a callback that does not exist:
    # only the worker's model (which the operator runs) can tell.
    bad = {
        "name": "news",
        "start": {"urls": ["http://127.0.0.1:1/"]},
        "callbacks": {"parse": {"follow": [{"css": "a::attr(href)", "callback": "nowhere"}]}},
    }
    cluster.create_crawl("news", {"spider": {"rules": bad}})
    status = cluster.wait_phase("news", "Failed")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpider"
    assert "callbacks.parse.follow.0.callback" in ready["message"]
    events = eventually(
        lambda: [e for e in cluster.events("news") if e.get("reason") == "InvalidSpider"], "a Warning event"
    )
    assert events[0]["type"] == "Warning"
    for kind in ("Secret", "Deployment", "StatefulSet", "Job", "ConfigMap"):
        owned = [
            o
            for o in cluster.list(kind)
            if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == "news"
        ]
        assert owned == [], f"no {kind} for an invalid crawl"


def test_invalid_cron_values_fail_without_touching_running_children(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "replicas": 2})
    before = eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    cluster.patch("Crawl", "news", {"spec": {"schedule": "99 * * * *", "replicas": 7}})
    ready = eventually(
        lambda: (c := cluster.condition("news", "Ready")).get("reason") == "InvalidSchedule" and c, "InvalidSchedule"
    )
    assert "spec.schedule" in ready["message"]
    after = cluster.get("Deployment", "news-slave")
    assert after["spec"]["replicas"] == 2 and after["metadata"]["generation"] == before["metadata"]["generation"]
    assert cluster.get("CronJob", "news-schedule") is None


def test_image_that_cannot_be_pulled_is_reported(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.create_crawl("news", {"spider": {"rules": RULES}, "image": "registry.invalid/nope:1"})
    eventually(lambda: cluster.get("Deployment", "news-slave"), "the slaves")
    # What a kubelet reports for a pod whose image cannot be pulled (the emulator has no kubelet, and a
    # test control plane may have none either), written through the status subresource as a kubelet does.
    labels = {
        "app.kubernetes.io/name": "kubecrawl",
        "app.kubernetes.io/instance": "news",
        "app.kubernetes.io/component": "slave",
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "news-slave-abc", "labels": labels},
           "spec": {"containers": [{"name": "worker", "image": "registry.invalid/nope:1"}]}}  # fmt: skip
    cluster.create("Pod", pod)
    waiting = {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
    statuses = [
        {
            "name": "worker",
            "image": "registry.invalid/nope:1",
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"waiting": waiting},
        }
    ]
    cluster.patch("Pod", "news-slave-abc", {"status": {"containerStatuses": statuses}}, sub="status")
    ready = eventually(
        lambda: (c := cluster.condition("news", "Ready")).get("reason") == "ImagePullFailed" and c,
        "ImagePullFailed",
        120,
    )
    assert "registry.invalid/nope:1" in ready["message"] and "spec.image" in ready["message"]
    assert (
        eventually(
            lambda: [e for e in cluster.events("news") if e.get("reason") == "ImagePullFailed"], "a Warning event"
        )[0]["type"]
        == "Warning"
    )
