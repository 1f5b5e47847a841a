"""Read what is: the seed Job, the slaves' pods, the Redis StatefulSet and the crawl's Redis stats."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import redis
from croniter import croniter

from kubecrawl_operator.naming import REDIS_PORT, CrawlRef
from kubecrawl_operator.phase import CrawlStats, Problem, SeedJobState

if TYPE_CHECKING:
    from kubecrawl_operator.models import CrawlSpec

logger = logging.getLogger(__name__)

#: Container waiting reasons that no amount of waiting fixes.
IMAGE_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


def seed_job_state(job: dict[str, Any] | None) -> SeedJobState:
    if job is None:
        return SeedJobState()
    status = job.get("status") or {}
    failed = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Failed" and c.get("status") == "True"),
        None,
    )
    return SeedJobState(
        exists=True,
        active=bool(status.get("active")),
        succeeded=bool(status.get("succeeded")),
        failed=failed is not None,
        message=(failed or {}).get("message", ""),
    )


def pod_problem(pods: list[dict[str, Any]]) -> Problem | None:
    """The first pod that cannot start for a reason a user must fix (image, config)."""
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for cs in statuses:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            name = pod.get("metadata", {}).get("name", "?")
            if reason in IMAGE_REASONS:
                image = cs.get("image", "?")
                return Problem(
                    "ImagePullFailed",
                    f"pod {name} cannot pull image {image!r} ({reason}): check spec.image "
                    f"and the registry credentials. {waiting.get('message', '')}".strip(),
                )
            if reason in CONFIG_REASONS:
                return Problem("PodConfigError", f"pod {name}: {reason}: {waiting.get('message', '')}".strip())
    return None


def _true_condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == ctype and c.get("status") == "True"), None)


def stuck_creating(kind: str, obj: dict[str, Any] | None) -> bool:
    """A StatefulSet or Job that should have a pod and has none: worth a look at its events."""
    if not obj:
        return False
    status = obj.get("status") or {}
    if kind == "StatefulSet":
        return int(status.get("replicas") or 0) < int((obj.get("spec") or {}).get("replicas", 1) or 0)
    if kind == "Job":
        finished = _true_condition(obj, "Complete") or _true_condition(obj, "Failed")
        return not finished and not status.get("active") and not status.get("succeeded")
    return False


def creation_problem(
    deployment: dict[str, Any] | None, stuck: list[tuple[str, dict[str, Any]]], events: list[dict[str, Any]]
) -> Problem | None:
    """Pods the controllers cannot create (quota, LimitRange, admission webhooks), from what they report.

    The Deployment carries its ReplicaSet's `ReplicaFailure` condition; StatefulSets and Jobs only
    record `FailedCreate` events, matched here by the object's uid (not an older namesake's).
    """
    failure = _true_condition(deployment or {}, "ReplicaFailure")
    if failure is not None:
        name = (deployment or {}).get("metadata", {}).get("name", "?")
        return Problem("FailedCreate", f"Deployment {name} cannot create pods: {failure.get('message', '')}".strip())
    by_uid = {obj["metadata"].get("uid"): (kind, obj) for kind, obj in stuck if obj.get("metadata", {}).get("uid")}
    latest: dict[str, dict[str, Any]] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        uid = str(involved.get("uid") or "")
        if event.get("reason") != "FailedCreate" or uid not in by_uid:
            continue
        if uid not in latest or _event_time(event) >= _event_time(latest[uid]):
            latest[uid] = event
    for uid, event in latest.items():
        kind, obj = by_uid[uid]
        name = obj["metadata"].get("name", "?")
        return Problem("FailedCreate", f"{kind} {name} cannot create pods: {event.get('message', '')}".strip())
    return None


def _event_time(event: dict[str, Any]) -> str:
    series = event.get("series") or {}
    return str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or ""
    )


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def round_problem(jobs: list[dict[str, Any]], spec: CrawlSpec, now: datetime.datetime) -> Problem | None:
    """A round Job that blocks later rounds (concurrencyPolicy Forbid), or the latest one stopped at its deadline.

    Blocked: still running although the schedule fired again since it started (that round was skipped).
    """
    if not spec.schedule:
        return None
    zone = ZoneInfo(spec.time_zone) if spec.time_zone else datetime.UTC
    latest: dict[str, Any] | None = None
    for job in jobs:
        status = job.get("status") or {}
        start = status.get("startTime")
        created = job.get("metadata", {}).get("creationTimestamp") or ""
        if latest is None or created > (latest.get("metadata", {}).get("creationTimestamp") or ""):
            latest = job
        if not status.get("active") or not start:
            continue
        started = _timestamp(start)
        due = croniter(spec.schedule, started.astimezone(zone)).get_next(datetime.datetime)
        if due < now:
            name = job.get("metadata", {}).get("name", "?")
            return Problem(
                "RoundJobHung",
                f"round Job {name} has run since {start}; the round due at "
                f"{due.astimezone(datetime.UTC):%Y-%m-%dT%H:%M:%SZ} was skipped (concurrencyPolicy Forbid). "
                f"It is stopped after spec.masterDeadlineSeconds ({spec.master_deadline_seconds}s)",
            )
    if latest is not None:
        failed = _true_condition(latest, "Failed")
        if failed is not None and failed.get("reason") == "DeadlineExceeded":
            name = latest.get("metadata", {}).get("name", "?")
            return Problem(
                "RoundDeadlineExceeded",
                f"round Job {name} was stopped after spec.masterDeadlineSeconds "
                f"({spec.master_deadline_seconds}s): {failed.get('message', '')}".strip(),
            )
    return None


def redis_url_for_operator(crawl: CrawlRef, url: str | None, cluster_domain: str) -> str:
    """The URL the operator reads stats from: the external one, or the Service's cluster DNS name."""
    if url is not None:
        return url
    return f"redis://{crawl.redis}.{crawl.namespace}.{cluster_domain}:{REDIS_PORT}/0"


def read_stats(
    url: str, password: str | None, crawl_key: str, timeout: float, hint: str = "check spec.redis.url and the network"
) -> tuple[CrawlStats | None, Problem | None]:
    """The crawl's counters via the worker's one reader of the Redis keys (`kubecrawl.status`)."""
    try:
        from kubecrawl.status import read_status  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None, Problem("StatsUnavailable", "the operator image lacks kubecrawl.status; reinstall it")
    client = redis.Redis.from_url(
        url, password=password, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False
    )
    try:
        return read_status(client, crawl_key), None
    except redis.AuthenticationError as exc:
        return None, Problem("RedisAuthFailed", f"Redis at {_safe(url)} refused the password: {exc}")
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        return None, Problem("RedisUnreachable", f"cannot reach Redis at {_safe(url)}: {exc}; {hint}")
    finally:
        client.close()


def _safe(url: str) -> str:
    """The URL without any password in it (it goes into status and events)."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


#: Stream consumer group of the slaves' feed delivery (kubecrawl.feeds.stream.GROUP).
FEEDS_GROUP = "feeds"
#: The oldest undelivered item tried this many times: delivery is failing, not just busy.
DELIVERY_FAILING_ATTEMPTS = 5


@dataclass(frozen=True)
class RedisExtras:
    """What the operator reads from a crawl's Redis besides the stats."""

    existing_data: str = ""  # non-empty: the Redis held an earlier Crawl's data
    delivered: int | None = None  # items every sink has (acknowledged by the feeds group)
    pending: int = 0  # read by a slave, not yet in every sink
    lag: int = 0  # in the stream, not yet read by any slave
    oldest_attempts: int = 0  # times the oldest pending item was handed to a slave
    oldest_id: str = ""


def _created_epoch(created: str) -> float | None:
    try:
        return _timestamp(created).timestamp()
    except ValueError:
        return None


def read_redis_extras(
    url: str,
    password: str | None,
    crawl: CrawlRef,
    created: str,
    timeout: float,
    output: bool,
) -> RedisExtras:
    """Claim the crawl's Redis for this Crawl object (`kc:{crawl}:owner` = its uid) and say if it held an
    earlier Crawl's data; with spec.output, the feeds group's delivery counters. Errors: nothing (the
    stats read already reported an unreachable Redis)."""
    prefix = f"kc:{{{crawl.name}}}:"
    client = redis.Redis.from_url(
        url, password=password, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
    )
    try:
        owner = str(client.get(prefix + "owner") or "")
        existing = ""
        if owner != crawl.uid:
            if owner:
                existing = f"the crawl's Redis holds data of an earlier Crawl {crawl.name!r} (uid {owner})"
            else:
                meta = {str(k): str(v) for k, v in client.hgetall(prefix + "meta").items()}
                started = float(meta.get("round_started_at") or 0)
                born = _created_epoch(created)
                if meta and born is not None and 0 < started < born:
                    existing = (
                        f"the crawl's Redis held data from before this Crawl was created "
                        f"(round {meta.get('round', '?')} started at "
                        f"{datetime.datetime.fromtimestamp(started, datetime.UTC):%Y-%m-%dT%H:%M:%SZ})"
                    )
            if existing:
                existing += (
                    ": its queue, fingerprints and items are reused. To start fresh, delete the Crawl and its PVC "
                    f"data-{crawl.redis}-0 (spec.redis.retainOnDelete: true keeps it)"
                )
            client.set(prefix + "owner", crawl.uid)
        if not output:
            return RedisExtras(existing_data=existing)
        groups = client.xinfo_groups(prefix + "items") if client.exists(prefix + "items") else []
        group = next((g for g in groups if g.get("name") == FEEDS_GROUP), None)
        if group is None:
            return RedisExtras(existing_data=existing, delivered=0, lag=int(client.xlen(prefix + "items")))
        pending = int(group.get("pending") or 0)
        read = int(group.get("entries-read") or 0)
        lag = group.get("lag")
        attempts, oldest = 0, ""
        if pending:
            first = client.xpending_range(prefix + "items", FEEDS_GROUP, min="-", max="+", count=1)
            if first:
                attempts, oldest = int(first[0]["times_delivered"]), str(first[0]["message_id"])
        return RedisExtras(
            existing_data=existing,
            delivered=max(read - pending, 0),
            pending=pending,
            lag=int(lag) if lag is not None else 0,
            oldest_attempts=attempts,
            oldest_id=oldest,
        )
    except (redis.RedisError, OSError) as exc:
        logger.debug("reading %s extras: %s", crawl.name, exc)
        return RedisExtras()
    finally:
        client.close()


def delivery_problem(extras: RedisExtras) -> Problem | None:
    if extras.oldest_attempts >= DELIVERY_FAILING_ATTEMPTS:
        return Problem(
            "SinkWriteFailing",
            f"the oldest undelivered item (stream id {extras.oldest_id}) was handed to slaves "
            f"{extras.oldest_attempts} times without reaching every sink; {extras.pending} pending, "
            f"{extras.lag} waiting. The slaves' logs say why (`feed delivery failed`); the items stay in Redis",
        )
    return None
