"""Default requests/limits of a crawl's pods, spec overrides, Redis maxmemory, and pods that cannot be
created (quota, admission) surfaced as Degraded."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.utils import parse_quantity

from kubecrawl_operator.builders import BuildContext, desired_children
from kubecrawl_operator.builders.resources import DEFAULT_RESOURCES, parse_defaults
from kubecrawl_operator.config import OperatorConfig
from kubecrawl_operator.models import parse_spec
from kubecrawl_operator.naming import CrawlRef
from kubecrawl_operator.observe import creation_problem, stuck_creating
from kubecrawl_operator.phase import Observed, decide

CRAWL = CrawlRef(name="books", namespace="quota", uid="6d0e3c7e-9a51-4c43-8f0e-2a1b8a1f3d10")
RULES = {"name": "books", "start": {"urls": ["https://example.org/"]}}


def containers(raw: dict[str, Any], ctx: BuildContext | None = None) -> dict[str, dict[str, Any]]:
    """component (redis, seed, slave, round) -> its one container."""
    spec = parse_spec({"spider": {"rules": RULES}, "schedule": "@hourly", **raw})
    children = desired_children(CRAWL, spec, ctx or BuildContext(default_image="kubecrawl/worker:1"), 2)
    out = {}
    for obj in [*children.mutable, children.seed_job, children.cronjob]:
        assert obj is not None
        template = (obj.get("spec") or {}).get("template") or (
            ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec", {}).get("template")
        )
        if template:
            (container,) = template["spec"]["containers"]
            out[template["metadata"]["labels"]["app.kubernetes.io/component"]] = container
    return out


def test_every_pod_gets_cpu_and_memory_requests_and_limits_by_default() -> None:
    got = containers({})
    assert set(got) == {"redis", "seed", "slave", "round"}
    for component, container in got.items():
        resources = container["resources"]
        for section in ("requests", "limits"):
            assert set(resources[section]) == {"cpu", "memory"}, (component, section)
    assert got["redis"]["resources"] == DEFAULT_RESOURCES["redis"]
    assert got["seed"]["resources"] == got["round"]["resources"] == DEFAULT_RESOURCES["master"]
    assert got["slave"]["resources"] == DEFAULT_RESOURCES["slave"]


def test_redis_maxmemory_is_three_quarters_of_its_memory_limit_and_never_evicts() -> None:
    command = containers({})["redis"]["command"]
    assert command[:2] == ["redis-server", "/etc/redis/redis.conf"]
    assert command[2:] == ["--maxmemory", str(int(parse_quantity("512Mi")) * 3 // 4)]
    command = containers({"redis": {"resources": {"limits": {"memory": "2Gi"}}}})["redis"]["command"]
    assert command[-1] == str(1536 * 1024 * 1024)
    from kubecrawl_operator.builders.redis import redis_config

    assert "maxmemory-policy noeviction" in redis_config("pw")


def test_the_spec_overrides_defaults_key_by_key() -> None:
    got = containers(
        {
            "resources": {"limits": {"memory": "3Gi"}},
            "masterResources": {"requests": {"cpu": "50m"}},
            "redis": {"resources": {"requests": {"memory": "1Gi"}}},
        }
    )
    assert got["slave"]["resources"] == {
        "requests": DEFAULT_RESOURCES["slave"]["requests"],
        "limits": {**DEFAULT_RESOURCES["slave"]["limits"], "memory": "3Gi"},
    }
    assert got["seed"]["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    # A request above the default limit raises that limit (the user never set it); maxmemory follows.
    assert got["redis"]["resources"]["limits"]["memory"] == "1Gi"
    assert got["redis"]["command"][-1] == str(768 * 1024 * 1024)


def test_master_resources_fall_back_to_the_workers_resources() -> None:
    got = containers({"resources": {"requests": {"cpu": "1"}}})
    assert got["seed"]["resources"]["requests"]["cpu"] == "1"


def test_operator_wide_defaults_come_from_the_environment_the_chart_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KUBECRAWL_OPERATOR_DEFAULT_RESOURCES",
        '{"slave": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}}',
    )
    config = OperatorConfig.from_env()
    assert config.default_resources["slave"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    assert config.default_resources["redis"] == DEFAULT_RESOURCES["redis"]
    ctx = BuildContext(default_image="w:1", default_resources=config.default_resources)
    assert containers({}, ctx)["slave"]["resources"]["limits"] == {"memory": "4Gi"}


@pytest.mark.parametrize(
    "text",
    ['{"sidecar": {}}', '{"slave": {"limit": {}}}', '{"slave": {"limits": {"memory": "lots"}}}', "[1]"],
)
def test_malformed_operator_defaults_are_refused_with_the_key(text: str) -> None:
    with pytest.raises(ValueError):
        parse_defaults(text)


# The objects below have the shape the API server returns; the event message is the one the
# ResourceQuota admission plugin gives (issue 18, seen on kube-apiserver v1.33.5).
QUOTA_MESSAGE = (
    'create Pod books-redis-0 in StatefulSet books-redis failed error: pods "books-redis-0" is forbidden: '
    "failed quota: compute: must specify limits.memory for: redis"
)


def sts(uid: str = "sts-uid", created: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": "books-redis", "uid": uid},
        "spec": {"replicas": 1},
        "status": {"replicas": created},
    }


def event(uid: str, message: str = QUOTA_MESSAGE, when: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    return {
        "reason": "FailedCreate",
        "type": "Warning",
        "message": message,
        "involvedObject": {"kind": "StatefulSet", "name": "books-redis", "uid": uid},
        "lastTimestamp": when,
    }


def test_a_statefulset_that_cannot_create_its_pod_is_a_creation_problem() -> None:
    stuck = [("StatefulSet", sts())]
    assert stuck_creating("StatefulSet", sts())
    problem = creation_problem({}, stuck, [event("sts-uid")])
    assert problem is not None and problem.reason == "FailedCreate"
    assert problem.message == f"StatefulSet books-redis cannot create pods: {QUOTA_MESSAGE}"


def test_events_of_an_older_namesake_or_a_running_statefulset_do_not_count() -> None:
    assert creation_problem({}, [("StatefulSet", sts("new-uid"))], [event("old-uid")]) is None
    assert not stuck_creating("StatefulSet", sts(created=1))


def test_the_latest_event_is_reported() -> None:
    events = [event("sts-uid", "old", "2026-12-01T10:00:00Z"), event("sts-uid", "new", "2026-12-01T10:05:00Z")]
    problem = creation_problem({}, [("StatefulSet", sts())], events)
    assert problem is not None and problem.message.endswith(": new")


def test_a_deployments_replica_failure_condition_is_a_creation_problem() -> None:
    deployment = {
        "metadata": {"name": "books-slave"},
        "status": {
            "conditions": [
                {"type": "Available", "status": "False"},
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "pods forbidden"},
            ]
        },
    }
    problem = creation_problem(deployment, [], [])
    assert problem is not None and problem.message == "Deployment books-slave cannot create pods: pods forbidden"


def test_jobs_are_stuck_only_while_unfinished_without_pods() -> None:
    assert stuck_creating("Job", {"metadata": {"uid": "j"}, "status": {}})
    assert not stuck_creating("Job", {"metadata": {"uid": "j"}, "status": {"active": 1}})
    assert not stuck_creating("Job", {"metadata": {"uid": "j"}, "status": {"succeeded": 1}})
    failed = {"metadata": {"uid": "j"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert not stuck_creating("Job", failed)


def test_a_creation_problem_makes_the_crawl_degraded_and_not_ready() -> None:
    spec = parse_spec({"spider": {"rules": RULES}})
    problem = creation_problem({}, [("StatefulSet", sts())], [event("sts-uid")])
    decision = decide(Observed(spec=spec, create_problem=problem))
    assert decision.conditions["Degraded"] == (True, "FailedCreate", problem.message)  # type: ignore[union-attr]
    assert decision.conditions["Ready"][:2] == (False, "FailedCreate")
