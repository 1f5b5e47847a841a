"""Pure status logic: what the operator observed in, phase + conditions + slave replicas out.

Kept free of API calls so every transition (seeding → running → idle → scaled back up) is a
unit-testable function of its inputs.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubecrawl_operator.models import CrawlSpec


class CrawlStats(Protocol):
    """What `kubecrawl.status.read_status` returns (the fields the operator uses)."""

    queued: int
    in_flight: int
    seen: int
    pages: int
    items: int
    errors: int
    pages_per_min: float
    seeded_round: int
    seeding: bool
    complete: bool
    live_workers: int


@dataclass(frozen=True)
class SeedJobState:
    exists: bool = False
    active: bool = False
    succeeded: bool = False
    failed: bool = False
    message: str = ""


@dataclass(frozen=True)
class Problem:
    """A reason the crawl cannot make progress, said so a user can act on it."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    spec: CrawlSpec
    stats: CrawlStats | None = None
    redis_problem: Problem | None = None  # None with stats None: Redis not ready yet
    seed: SeedJobState = field(default_factory=SeedJobState)
    seeded_before: bool = False  # the current spider's seed job finished earlier (recorded in status)
    pod_problem: Problem | None = None  # e.g. an image that cannot be pulled
    create_problem: Problem | None = None  # a controller cannot create pods (quota, admission)
    round_problem: Problem | None = None  # a round Job blocking later rounds, or stopped at its deadline
    replicas: int = 0
    ready_replicas: int = 0
    #: a referenced object missing (the spider source ConfigMap) or a child the API server refused
    problems: tuple[Problem, ...] = ()
    #: securityContext values of the pod templates the operator did not apply (they would weaken the pods)
    security_ignored: tuple[str, ...] = ()
    #: the crawl's Redis held data of an earlier Crawl of this name when this one first saw it
    existing_data: str = ""
    #: spec.output delivery failing (the oldest undelivered item retried again and again)
    delivery_problem: Problem | None = None


@dataclass(frozen=True)
class Decision:
    phase: str
    slave_replicas: int
    conditions: dict[str, tuple[bool, str, str]]  # type -> (status, reason, message)

    @property
    def ready_reason(self) -> str:
        return self.conditions["Ready"][1]


def decide(obs: Observed) -> Decision:
    """The phase, the slave replicas and the four conditions for what was observed."""
    spec = obs.spec
    stats = obs.stats
    seeded = obs.seeded_before or obs.seed.succeeded or bool(stats and stats.seeded_round >= 1)
    seeded_cond = (
        (True, "Seeded", "the seed job finished") if seeded else (False, "NotSeeded", "waiting for the seed job")
    )
    degraded: tuple[bool, str, str] = (False, "AsExpected", "")
    replicas = spec.replicas

    if spec.suspend:
        phase, ready = "Suspended", (False, "Suspended", "spec.suspend is true: slaves at 0, schedule paused")
        replicas = 0
    elif obs.seed.failed:
        phase = "Failed"
        msg = f"the seed job failed: {obs.seed.message or 'see its pod logs'}"
        ready = (False, "SeedFailed", msg)
        degraded = (True, "SeedFailed", msg)
    elif stats is None:
        phase = "Pending"
        if obs.redis_problem is not None:
            ready = (False, obs.redis_problem.reason, obs.redis_problem.message)
            degraded = (True, obs.redis_problem.reason, obs.redis_problem.message)
        else:
            ready = (False, "RedisNotReady", "waiting for the crawl's Redis to become ready")
    elif stats.seeding or obs.seed.active or not seeded:
        phase, ready = "Seeding", (True, "Seeding", "the master is seeding the start requests")
    elif stats.complete:
        scheduled = spec.schedule is not None
        phase = "Idle" if scheduled else "Completed"
        if spec.scale_to_zero:
            replicas = 0
        what = "round complete, waiting for the next scheduled round" if scheduled else "crawl complete"
        ready = (True, "RoundComplete" if scheduled else "Completed", what)
    else:
        phase = "Running"
        ready = (True, "Running", f"{stats.queued} queued, {stats.in_flight} in flight")

    lost = getattr(stats, "lost", None) if stats is not None else None
    if lost and phase != "Suspended":
        # the crawl's Redis lost acknowledged data (restarted empty, or from an older snapshot): the
        # workers stop (exit 1) and the crawl is never reported complete (docs/distributed.md)
        phase = "Failed"
        msg = f"the crawl's Redis lost data: {lost}"
        ready, degraded = (False, "StoreLostData", msg), (True, "StoreLostData", msg)

    for problem in (obs.pod_problem, obs.create_problem, *obs.problems):
        if problem is not None and phase not in ("Suspended",):
            ready = (False, problem.reason, problem.message)
            degraded = (True, problem.reason, problem.message)

    progressing = phase in ("Seeding", "Running", "Pending")
    if spec.schedule is None:
        stuck: tuple[bool, str, str] = (False, "NoSchedule", "a one-shot crawl has no rounds")
    elif obs.round_problem is not None:
        stuck = (True, obs.round_problem.reason, obs.round_problem.message)
    else:
        stuck = (False, "AsExpected", "")
    conditions = {
        "Ready": ready,
        "Seeded": seeded_cond,
        "Progressing": (progressing, phase, "crawling" if phase in ("Seeding", "Running") else phase.lower()),
        "Degraded": degraded,
        "RoundStuck": stuck,
        "Complete": complete_condition(spec, phase),
        "SecurityContextEnforced": (
            (
                True,
                "IgnoredWeakening",
                "ignored (the operator enforces the restricted profile): " + ", ".join(obs.security_ignored),
            )
            if obs.security_ignored
            else (False, "AsRequested", "")
        ),
        "ExistingData": (True, "FoundData", obs.existing_data) if obs.existing_data else (False, "AsExpected", ""),
        "DeliveryFailed": delivery_condition(spec, obs.delivery_problem),
    }
    return Decision(phase=phase, slave_replicas=replicas, conditions=conditions)


def complete_condition(spec: CrawlSpec, phase: str) -> tuple[bool, str, str]:
    """`kubectl wait --for=condition=Complete crawl/NAME`: True once a one-shot crawl is done."""
    if phase == "Completed":
        return (True, "Completed", "the crawl is complete: queue empty, nothing in flight")
    if spec.schedule is not None:
        return (False, "Scheduled", "a scheduled crawl runs a round at every schedule and never completes")
    return (False, phase, f"phase {phase}")


def delivery_condition(spec: CrawlSpec, problem: Problem | None) -> tuple[bool, str, str]:
    if not spec.output:
        return (False, "NoOutput", "spec.output is empty: items stay in the crawl's Redis stream")
    if problem is not None:
        return (True, problem.reason, problem.message)
    return (False, "AsExpected", "")


def invalid_decision(problem: Problem) -> Decision:
    """A spec the schema could not reject: say why, touch no child."""
    return Decision(
        phase="Failed",
        slave_replicas=-1,
        conditions={
            "Ready": (False, problem.reason, problem.message),
            "Degraded": (True, problem.reason, problem.message),
            "Progressing": (False, problem.reason, "fix the spec; nothing was changed"),
        },
    )


def merge_conditions(
    previous: list[dict[str, Any]] | None,
    desired: dict[str, tuple[bool, str, str]],
    generation: int | None,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """metav1.Condition list; lastTransitionTime moves only when a condition's status flips."""
    old = {c.get("type"): c for c in previous or []}
    out: list[dict[str, Any]] = []
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for ctype, (status, reason, message) in desired.items():
        status_text = "True" if status else "False"
        before = old.get(ctype)
        flipped = before is None or before.get("status") != status_text
        condition: dict[str, Any] = {
            "type": ctype,
            "status": status_text,
            "reason": reason,
            "message": message,
            "lastTransitionTime": stamp if flipped else before.get("lastTransitionTime", stamp),  # type: ignore[union-attr]
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        out.append(condition)
    return out


def stats_status(stats: CrawlStats) -> dict[str, Any]:
    return {
        "queued": int(stats.queued),
        "inFlight": int(stats.in_flight),
        "seen": int(stats.seen),
        "pages": int(stats.pages),
        "items": int(stats.items),
        "errors": int(stats.errors),
        "pagesPerMin": round(float(stats.pages_per_min), 2),
        "workers": int(stats.live_workers),
        "seededRound": int(stats.seeded_round),
        "pushed": int(getattr(stats, "pushed", 0)),
    }
