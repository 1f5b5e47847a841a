"""Rounds: master Jobs have a deadline, a hung round is reported as RoundStuck, the CronJob waits for the
seeding, and one-shot crawls get a `Complete` condition for `kubectl wait`."""

from __future__ import annotations

import datetime
from typing import Any

from kubecrawl_operator.builders import BuildContext, desired_children
from kubecrawl_operator.models import parse_spec
from kubecrawl_operator.naming import CrawlRef
from kubecrawl_operator.observe import round_problem
from kubecrawl_operator.phase import Observed, decide

CRAWL = CrawlRef(name="news", namespace="crawls", uid="u")
CTX = BuildContext(default_image="kubecrawl/worker:1")
RULES = {"name": "news", "start": {"urls": ["https://example.org/"]}}
NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def spec(**extra: Any) -> Any:
    return parse_spec({"spider": {"rules": RULES}, **extra})


def round_job(name: str, start: str | None, active: int = 1, failed: dict[str, str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"active": active} if active else {}
    if start:
        status["startTime"] = start
    if failed:
        status["conditions"] = [{"type": "Failed", "status": "True", **failed}]
    return {"metadata": {"name": name, "creationTimestamp": start or "2026-12-01T00:00:00Z"}, "status": status}


def test_seed_and_round_jobs_have_an_active_deadline() -> None:
    children = desired_children(CRAWL, spec(schedule="*/30 * * * *", masterDeadlineSeconds=900), CTX, 1)
    assert children.seed_job["spec"]["activeDeadlineSeconds"] == 900
    assert children.cronjob is not None
    assert children.cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 900
    assert desired_children(CRAWL, spec(), CTX, 1).seed_job["spec"]["activeDeadlineSeconds"] == 3600


def test_the_cronjob_is_suspended_until_the_seed_job_finished() -> None:
    scheduled = spec(schedule="@hourly")
    assert desired_children(CRAWL, scheduled, CTX, 1, seeded=False).cronjob["spec"]["suspend"] is True  # type: ignore[index]
    assert desired_children(CRAWL, scheduled, CTX, 1, seeded=True).cronjob["spec"]["suspend"] is False  # type: ignore[index]
    suspended = spec(schedule="@hourly", suspend=True)
    assert desired_children(CRAWL, suspended, CTX, 1, seeded=True).cronjob["spec"]["suspend"] is True  # type: ignore[index]


def test_a_round_job_running_past_the_next_schedule_is_stuck() -> None:
    s = spec(schedule="*/30 * * * *")
    hung = round_job("news-schedule-29500000", "2026-12-01T10:00:05Z")
    problem = round_problem([hung], s, NOW)
    assert problem is not None and problem.reason == "RoundJobHung"
    assert "news-schedule-29500000" in problem.message and "2026-12-01T10:30:00Z" in problem.message
    # Started in the current period: not (yet) blocking anything.
    assert round_problem([round_job("r", "2026-12-01T11:40:00Z")], s, NOW) is None


def test_the_schedules_time_zone_decides_when_the_next_round_was_due() -> None:
    daily = spec(schedule="0 9 * * *", timeZone="Asia/Shanghai")  # 09:00 in Shanghai = 01:00 UTC
    started = round_job("r", "2026-12-01T01:00:00Z")
    assert round_problem([started], daily, NOW) is None  # next: 2026-12-02T01:00Z, after NOW
    assert round_problem([started], daily, NOW + datetime.timedelta(days=1, hours=1)) is not None


def test_the_latest_round_stopped_at_its_deadline_is_reported_until_a_later_one_runs() -> None:
    s = spec(schedule="@hourly")
    dead = round_job(
        "r1",
        "2026-12-01T10:00:00Z",
        active=0,
        failed={"reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"},
    )
    problem = round_problem([dead], s, NOW)
    assert problem is not None and problem.reason == "RoundDeadlineExceeded"
    later = round_job("r2", "2026-12-01T11:00:00Z", active=0)
    assert round_problem([dead, later], s, NOW) is None


def test_round_stuck_is_a_condition_of_scheduled_crawls() -> None:
    s = spec(schedule="*/30 * * * *")
    problem = round_problem([round_job("r", "2026-12-01T10:00:05Z")], s, NOW)
    decision = decide(Observed(spec=s, round_problem=problem))
    assert decision.conditions["RoundStuck"][:2] == (True, "RoundJobHung")
    assert decide(Observed(spec=s)).conditions["RoundStuck"] == (False, "AsExpected", "")
    assert decide(Observed(spec=spec())).conditions["RoundStuck"][:2] == (False, "NoSchedule")


class Stats:
    queued = in_flight = pages = items = errors = live_workers = 0
    seen = 3
    pages_per_min = 0.0
    seeded_round = 1
    seeding = False
    complete = True


def test_complete_is_true_only_for_a_finished_one_shot_crawl() -> None:
    done = decide(Observed(spec=spec(), stats=Stats(), seeded_before=True))
    assert done.phase == "Completed" and done.conditions["Complete"][:2] == (True, "Completed")
    idle = decide(Observed(spec=spec(schedule="@hourly"), stats=Stats(), seeded_before=True))
    assert idle.phase == "Idle" and idle.conditions["Complete"][:2] == (False, "Scheduled")
    pending = decide(Observed(spec=spec()))
    assert pending.conditions["Complete"][:2] == (False, "Pending")
