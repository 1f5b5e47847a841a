"""The phase machine as a pure function: what the operator observed in, phase/replicas/conditions out."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from kubecrawl_operator.models import parse_spec
from kubecrawl_operator.phase import Observed, Problem, SeedJobState, decide, merge_conditions

RULES = {"spider": {"module": "pkg.mod:Spider"}}


@dataclass
class Stats:
    queued: int = 0
    in_flight: int = 0
    seen: int = 0
    pages: int = 0
    items: int = 0
    errors: int = 0
    pages_per_min: float = 0.0
    seeded_round: int = 0
    seeding: bool = False
    complete: bool = False
    live_workers: int = 0


def obs(stats: Stats | None = None, **spec: object) -> Observed:
    return Observed(spec=parse_spec({**RULES, "replicas": 3, **spec}), stats=stats)


def test_waits_for_redis_before_anything_else() -> None:
    d = decide(obs(None))
    assert (d.phase, d.slave_replicas, d.ready_reason) == ("Pending", 3, "RedisNotReady")


def test_seeding_keeps_slaves_up_so_they_start_on_the_first_requests() -> None:
    d = decide(obs(Stats(seeding=True, queued=5)))
    assert (d.phase, d.slave_replicas) == ("Seeding", 3)


def test_running_while_work_is_queued_or_in_flight() -> None:
    d = decide(obs(Stats(seeded_round=1, queued=0, in_flight=2)))
    assert (d.phase, d.slave_replicas, d.conditions["Ready"][0]) == ("Running", 3, True)


def test_one_shot_crawl_completes_at_zero_slaves() -> None:
    d = decide(obs(Stats(seeded_round=1, complete=True)))
    assert (d.phase, d.slave_replicas, d.ready_reason) == ("Completed", 0, "Completed")


def test_scheduled_crawl_idles_at_zero_between_rounds() -> None:
    d = decide(obs(Stats(seeded_round=2, complete=True), schedule="@hourly"))
    assert (d.phase, d.slave_replicas) == ("Idle", 0)


def test_scale_to_zero_off_keeps_the_slaves() -> None:
    d = decide(obs(Stats(seeded_round=1, complete=True), scaleToZero=False))
    assert (d.phase, d.slave_replicas) == ("Completed", 3)


def test_next_round_seeding_scales_back_up() -> None:
    d = decide(obs(Stats(seeded_round=1, seeding=True, queued=1), schedule="@hourly"))
    assert (d.phase, d.slave_replicas) == ("Seeding", 3)


def test_suspend_wins_over_everything() -> None:
    d = decide(obs(Stats(seeded_round=1, queued=100), suspend=True))
    assert (d.phase, d.slave_replicas, d.ready_reason) == ("Suspended", 0, "Suspended")


def test_a_new_spider_is_seeding_until_its_seed_job_finishes() -> None:
    spec = parse_spec({**RULES, "replicas": 2})
    d = decide(
        Observed(spec=spec, stats=Stats(seeded_round=1, complete=True), seed=SeedJobState(exists=True, active=True))
    )
    assert (d.phase, d.slave_replicas) == ("Seeding", 2)


def test_failed_seed_job_is_a_failed_crawl() -> None:
    spec = parse_spec(RULES)
    d = decide(
        Observed(spec=spec, stats=Stats(), seed=SeedJobState(exists=True, failed=True, message="BackoffLimitExceeded"))
    )
    assert (d.phase, d.ready_reason) == ("Failed", "SeedFailed")
    assert d.conditions["Degraded"][0] is True and "BackoffLimitExceeded" in d.conditions["Degraded"][2]


def test_pod_problems_make_the_crawl_not_ready_and_degraded() -> None:
    spec = parse_spec(RULES)
    d = decide(Observed(spec=spec, stats=Stats(seeded_round=1, queued=3), pod_problem=Problem("ImagePullFailed", "x")))
    assert (d.phase, d.ready_reason, d.conditions["Degraded"][0]) == ("Running", "ImagePullFailed", True)


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    t1 = t0 + datetime.timedelta(minutes=5)
    first = merge_conditions(None, {"Ready": (False, "RedisNotReady", "")}, 1, t0)
    same = merge_conditions(first, {"Ready": (False, "Seeding", "")}, 2, t1)
    flipped = merge_conditions(same, {"Ready": (True, "Running", "")}, 2, t1)
    assert first[0]["lastTransitionTime"] == same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z" and flipped[0]["observedGeneration"] == 2


def test_drift_check_ignores_server_defaults_and_quantity_spelling() -> None:
    from kubecrawl_operator.reconcile import is_subset

    desired = {
        "spec": {
            "replicas": 2,
            "template": {"containers": [{"resources": {"requests": {"memory": "268435456", "cpu": "500m"}}}]},
        }
    }
    stored = {
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "template": {
                "containers": [
                    {
                        "resources": {"requests": {"memory": "256Mi", "cpu": "500m"}},
                        "terminationMessagePath": "/dev/termination-log",
                    }
                ]
            },
        }
    }
    assert is_subset(desired, stored)
    assert not is_subset({**desired, "spec": {**desired["spec"], "replicas": 3}}, stored)
    assert not is_subset(
        {"spec": {"template": {"containers": [{"image": "a:1"}, {"image": "b:1"}]}}},
        {"spec": {"template": {"containers": [{"image": "a:1"}]}}},
    )


def test_drift_check_treats_zero_values_the_server_omits_as_equal() -> None:
    """The API server drops omitempty fields holding false/0/""/[]: a literal comparison patched every pass."""
    from kubecrawl_operator.builders import redis_service
    from kubecrawl_operator.naming import CrawlRef
    from kubecrawl_operator.reconcile import _patchable, is_subset

    assert is_subset({"spec": {"publishNotReadyAddresses": False, "x": []}}, {"spec": {}})
    assert not is_subset({"spec": {"publishNotReadyAddresses": True}}, {"spec": {}})
    assert not is_subset({"spec": {"publishNotReadyAddresses": False}}, {"spec": {"publishNotReadyAddresses": True}})
    # The Redis Service as a v1.33 API server stores it (defaults added, nothing false kept).
    desired = _patchable(redis_service(CrawlRef(name="books", namespace="ns", uid="u")))
    stored = {
        "metadata": {**desired["metadata"], "resourceVersion": "7", "uid": "s"},
        "spec": {
            **desired["spec"],
            "clusterIPs": ["None"],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
    }
    stored["spec"].pop("publishNotReadyAddresses", None)
    assert is_subset(desired, stored)


@dataclass
class StoreStats(Stats):
    lost: str | None = None
    pushed: int = 0


def test_a_crawl_whose_redis_lost_data_fails_and_is_never_complete() -> None:
    """The workers' `lost` flag (Redis restarted empty or from an older snapshot) is a failure, with the reason."""
    d = decide(obs(StoreStats(seeded_round=1, complete=False, lost="worker w1 had commit 3.7 acknowledged")))
    assert d.phase == "Failed"
    assert d.conditions["Ready"][:2] == (False, "StoreLostData")
    assert d.conditions["Degraded"][0] is True and "commit 3.7" in d.conditions["Degraded"][2]


def test_requests_pushed_from_outside_are_counted_in_status() -> None:
    from kubecrawl_operator.phase import stats_status

    assert stats_status(StoreStats(pushed=12))["pushed"] == 12
    assert stats_status(Stats())["pushed"] == 0  # an older worker's status has no such counter
