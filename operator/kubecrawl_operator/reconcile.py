"""One level-based, idempotent pass over one Crawl: observe, decide, converge children, report status.

Called by every kopf handler (create, update, resume, timer); running it twice changes nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils import parse_quantity

from kubecrawl_operator.builders import BuildContext, desired_children, redis_secret
from kubecrawl_operator.builders.podtemplate import ignored_security
from kubecrawl_operator.builders.policy import slave_pdb_name, worker_network_policy_name
from kubecrawl_operator.builders.redis import PASSWORD_KEY
from kubecrawl_operator.config import OperatorConfig
from kubecrawl_operator.kube import Kube, KubeError, PassCache
from kubecrawl_operator.models import CrawlSpec
from kubecrawl_operator.naming import (
    SPIDER_HASH_ANNOTATION,
    CrawlRef,
    selector_labels,
    selector_string,
    short_hash,
    spider_hash,
)
from kubecrawl_operator.observe import (
    RedisExtras,
    creation_problem,
    delivery_problem,
    pod_problem,
    read_redis_extras,
    read_stats,
    redis_url_for_operator,
    round_problem,
    seed_job_state,
    stuck_creating,
)
from kubecrawl_operator.phase import (
    Decision,
    Observed,
    Problem,
    decide,
    invalid_decision,
    merge_conditions,
    stats_status,
)
from kubecrawl_operator.validation import check_spec, redact

logger = logging.getLogger(__name__)

#: Immutable after creation; never part of a patch or a drift comparison.
IMMUTABLE_SPEC_FIELDS = {
    "StatefulSet": ("volumeClaimTemplates", "selector", "serviceName"),
    "Deployment": ("selector",),
}
#: Maps whose values are resource quantities (compared by value, not spelling).
QUANTITY_PARENTS = frozenset({"requests", "limits"})
#: Ready reasons that are a normal part of a crawl's life, not something a user must fix.
BENIGN_REASONS = frozenset({"Seeding", "Running", "RoundComplete", "Completed", "Suspended", "RedisNotReady"})


@dataclass
class Outcome:
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def is_subset(desired: Any, actual: Any, parent: str = "") -> bool:
    """True when everything in `desired` is in `actual` (the API server may add defaults).

    Quantities under `requests`/`limits` compare by value: the server stores 268435456 as "256Mi".
    A zero value (false, 0, "", [], {}) matches an absent field: Kubernetes drops `omitempty` fields
    holding it, so comparing them literally would patch on every pass.
    """
    if actual is None and desired in (False, 0, "", [], {}) and desired is not None:
        return True
    if isinstance(desired, dict) and parent in QUANTITY_PARENTS:
        return isinstance(actual, dict) and all(_same_quantity(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(is_subset(v, actual.get(k), k) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(is_subset(d, a, parent) for d, a in zip(desired, actual, strict=True))
        )
    return bool(desired == actual)


def _same_quantity(desired: Any, actual: Any) -> bool:
    if desired == actual:
        return True
    try:
        return bool(parse_quantity(desired) == parse_quantity(actual))
    except (ValueError, TypeError):
        return False


def _patchable(manifest: dict[str, Any]) -> dict[str, Any]:
    body = {
        "metadata": {
            k: manifest["metadata"][k]
            for k in ("labels", "ownerReferences", "annotations")
            if k in manifest["metadata"]
        }
    }
    for key, value in manifest.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key == "spec":
            value = {k: v for k, v in value.items() if k not in IMMUTABLE_SPEC_FIELDS.get(manifest["kind"], ())}
        body[key] = value
    return body


def ensure(kube: Kube, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create the child, or patch it back to the desired state if it drifted (edited by hand)."""
    meta = manifest["metadata"]
    kind, ns, name = manifest["kind"], meta["namespace"], meta["name"]
    actual = kube.get(kind, ns, name)
    if actual is None:
        created = kube.create(manifest)
        if created is not None:
            return created
        actual = kube.get(kind, ns, name) or {}
    body = _patchable(manifest)
    if is_subset(body, actual):
        return actual
    return kube.patch(kind, ns, name, body)


#: HTTP statuses of a child the API server (or an admission webhook) refuses as asked: a spec problem.
REFUSED_STATUSES = frozenset({400, 403, 422})


def _ensure_reported(kube: Kube, manifest: dict[str, Any], problems: list[Problem]) -> None:
    """`ensure`, with a refusal (e.g. an invalid spec.podTemplate.affinity) reported instead of raised."""
    try:
        ensure(kube, manifest)
    except KubeError as exc:
        if exc.status not in REFUSED_STATUSES:
            raise
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        problems.append(Problem("ChildRejected", f"the API server refused {kind} {name}: {_api_message(exc)}"))


def _api_message(exc: KubeError) -> str:
    text = str(exc).split(": ", 1)[-1]
    try:
        return str(json.loads(text).get("message") or text)
    except (ValueError, AttributeError):
        return text


def source_hash(kube: Kube, crawl: CrawlRef, spec: CrawlSpec) -> tuple[str, Problem | None]:
    """Hash of the spider source ConfigMap's data (pods roll when the code changes), or why it is missing."""
    source = spec.spider.source
    if source is None:
        return "", None
    cm = kube.get("ConfigMap", crawl.namespace, source.config_map)
    if cm is None:
        return "", Problem(
            "SpiderSourceMissing",
            f"ConfigMap {source.config_map!r} (spec.spider.source.configMap) not found in {crawl.namespace}: "
            f"kubectl create configmap {source.config_map} --from-file=spiders/",
        )
    keys = set((cm.get("data") or {}) | (cm.get("binaryData") or {}))
    missing = sorted({i.key for i in source.items or []} - keys)
    if missing:
        return "", Problem(
            "SpiderSourceMissing",
            f"ConfigMap {source.config_map!r} has no key {', '.join(missing)} (spec.spider.source.items)",
        )
    return short_hash({"data": cm.get("data") or {}, "binaryData": cm.get("binaryData") or {}}), None


def ensure_absent(kube: Kube, kind: str, namespace: str, name: str) -> None:
    if kube.get(kind, namespace, name) is not None:
        kube.delete(kind, namespace, name)


def _decode(secret: Mapping[str, Any] | None, key: str) -> str | None:
    data = (secret or {}).get("data") or {}
    return base64.b64decode(data[key]).decode() if key in data else None


def ensure_redis_password(kube: Kube, crawl: CrawlRef, spec: CrawlSpec) -> tuple[str | None, Problem | None]:
    """The generated password (Secret created once, never rewritten), or the external one."""
    if spec.redis.url is not None:
        ref = spec.redis.password_secret_ref
        if ref is None:
            return None, None
        password = _decode(kube.get("Secret", crawl.namespace, ref.name), ref.key)
        if password is None:
            return None, Problem(
                "RedisPasswordMissing",
                f"secret {ref.name!r} with key {ref.key!r} (spec.redis.passwordSecretRef) not found",
            )
        return password, None
    existing = kube.get("Secret", crawl.namespace, crawl.secret)
    if existing is None:
        kube.create(redis_secret(crawl, secrets.token_urlsafe(32)))
        existing = kube.get("Secret", crawl.namespace, crawl.secret)
    return _decode(existing, PASSWORD_KEY), None


def _observe(
    kube: Kube,
    crawl: CrawlRef,
    spec: CrawlSpec,
    config: OperatorConfig,
    password: str | None,
    secret_problem: Problem | None,
    previous: Mapping[str, Any],
    now: datetime.datetime,
) -> Observed:
    seed_job = kube.get("Job", crawl.namespace, crawl.seed_job(spider_hash(spec)))
    seed = seed_job_state(seed_job)
    deployment = kube.get("Deployment", crawl.namespace, crawl.slave) or {}
    candidates: list[tuple[str, dict[str, Any] | None]] = [("Job", seed_job)]
    if spec.redis.url is None:
        candidates.append(("StatefulSet", kube.get("StatefulSet", crawl.namespace, crawl.redis)))
    round_jobs = kube.list("Job", crawl.namespace, selector_labels(crawl, "round")) if spec.schedule else []
    candidates += [("Job", job) for job in round_jobs]
    stuck = [(kind, obj) for kind, obj in candidates if obj is not None and stuck_creating(kind, obj)]
    # Events are read only when a controller has no pod to show for a while: a quiet pass reads none.
    events = kube.list("Event", crawl.namespace, {}, {"reason": "FailedCreate"}) if stuck else []
    pods = kube.list(
        "Pod", crawl.namespace, {"app.kubernetes.io/instance": crawl.name, "app.kubernetes.io/name": "kubecrawl"}
    )
    stats, redis_problem = None, secret_problem
    if redis_problem is None:
        redis_ready = True
        if spec.redis.url is None:
            sts = kube.get("StatefulSet", crawl.namespace, crawl.redis) or {}
            redis_ready = bool((sts.get("status") or {}).get("readyReplicas"))
        if redis_ready:
            url = redis_url_for_operator(crawl, spec.redis.url, config.cluster_domain)
            hint = (
                "check spec.redis.url and the network"
                if spec.redis.url
                else "check that the operator's pods carry app.kubernetes.io/name=kubecrawl-operator (the Redis NetworkPolicy admits them)"
            )
            stats, redis_problem = read_stats(url, password, crawl.name, config.redis_timeout, hint)
    dep_status = deployment.get("status") or {}
    return Observed(
        spec=spec,
        stats=stats,
        redis_problem=redis_problem,
        seed=seed,
        seeded_before=previous.get("seededSpiderHash") == spider_hash(spec),
        pod_problem=pod_problem(pods),
        create_problem=creation_problem(deployment, stuck, events),
        round_problem=round_problem(round_jobs, spec, now),
        replicas=int(dep_status.get("replicas") or 0),
        ready_replicas=int(dep_status.get("readyReplicas") or 0),
    )


def _converge(
    kube: Kube, crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, decision: Decision, seeded_before: bool
) -> list[Problem]:
    """Children to the desired state; returns the ones the API server refused."""
    problems: list[Problem] = []
    seeded = decision.conditions["Seeded"][0]
    children = desired_children(crawl, spec, ctx, decision.slave_replicas, seeded)
    for manifest in children.mutable:
        _ensure_reported(kube, manifest, problems)
    current_seed = children.seed_job["metadata"]["name"]
    if not seeded_before and kube.get("Job", crawl.namespace, current_seed) is None:
        try:
            kube.create(children.seed_job)
        except KubeError as exc:
            if exc.status not in REFUSED_STATUSES:
                raise
            problems.append(Problem("ChildRejected", f"the API server refused Job {current_seed}: {_api_message(exc)}"))
    for job in kube.list("Job", crawl.namespace, selector_labels(crawl, "seed")):
        meta = job.get("metadata", {})
        if meta.get("name") != current_seed and SPIDER_HASH_ANNOTATION in (meta.get("annotations") or {}):
            kube.delete("Job", crawl.namespace, meta["name"])  # the spider changed: its old seed is obsolete
    if children.cronjob is not None:
        _ensure_reported(kube, children.cronjob, problems)
    else:
        ensure_absent(kube, "CronJob", crawl.namespace, crawl.cronjob)
    if spec.redis.url is not None:  # switched to an external Redis; the PVC is kept
        for kind, name in (
            ("StatefulSet", crawl.redis),
            ("Service", crawl.redis),
            ("NetworkPolicy", crawl.network_policy),
        ):
            ensure_absent(kube, kind, crawl.namespace, name)
    if spec.spider.rules is None:
        ensure_absent(kube, "ConfigMap", crawl.namespace, crawl.spider_configmap)
    if not spec.network_policy.enabled:
        ensure_absent(kube, "NetworkPolicy", crawl.namespace, worker_network_policy_name(crawl))
    if not spec.disruption_budget.enabled:
        ensure_absent(kube, "PodDisruptionBudget", crawl.namespace, slave_pdb_name(crawl))
    return problems


#: Conditions whose turning True is worth a Warning event of its own (besides Ready's changes).
WARNING_CONDITIONS = ("DeliveryFailed", "ExistingData", "SecurityContextEnforced")


def _events(previous: Mapping[str, Any], decision: Decision) -> list[tuple[str, str, str]]:
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    events: list[tuple[str, str, str]] = []
    before: Mapping[str, Any] = old.get("Ready") or {}
    ready, reason, message = decision.conditions["Ready"]
    if not (before.get("reason") == reason and before.get("status") == ("True" if ready else "False")):
        kind = "Normal" if ready or reason in BENIGN_REASONS else "Warning"
        events.append((kind, reason, message or reason))
    for ctype in WARNING_CONDITIONS:
        if ctype not in decision.conditions:
            continue
        status, reason, message = decision.conditions[ctype]
        was = old.get(ctype) or {}
        if status and not (was.get("status") == "True" and was.get("reason") == reason):
            events.append(("Warning", reason, message or reason))
    return events


def reconcile(
    kube: Kube, body: Mapping[str, Any], config: OperatorConfig, now: datetime.datetime | None = None
) -> Outcome:
    now = now or datetime.datetime.now(datetime.UTC)
    kube = PassCache(kube)
    meta = body["metadata"]
    crawl = CrawlRef(name=meta["name"], namespace=meta["namespace"], uid=meta.get("uid", ""))
    previous: Mapping[str, Any] = body.get("status") or {}
    generation = meta.get("generation")
    spec, problem = check_spec(dict(body.get("spec") or {}), crawl.name)
    if spec is None:
        assert problem is not None
        decision = invalid_decision(problem)
        failed: dict[str, Any] = {
            "phase": decision.phase,
            "conditions": merge_conditions(previous.get("conditions"), decision.conditions, generation, now),
        }
        if generation is not None:
            failed["observedGeneration"] = generation
        return Outcome(status=failed, events=_events(previous, decision))

    password, secret_problem = ensure_redis_password(kube, crawl, spec)
    obs = _observe(kube, crawl, spec, config, password, secret_problem, previous, now)
    digest, source_problem = source_hash(kube, crawl, spec)
    extras = RedisExtras()
    if obs.stats is not None:
        url = redis_url_for_operator(crawl, spec.redis.url, config.cluster_domain)
        created = str(meta.get("creationTimestamp") or "")
        extras = read_redis_extras(url, password, crawl, created, config.redis_timeout, bool(spec.output))
    obs = dataclasses.replace(
        obs,
        problems=tuple(p for p in (source_problem,) if p is not None),
        security_ignored=tuple(
            ignored_security(spec.pod_template, "spec.podTemplate")
            + ignored_security(spec.redis.pod_template, "spec.redis.podTemplate")
        ),
        existing_data=str(previous.get("existingData") or extras.existing_data),
        delivery_problem=delivery_problem(extras),
    )
    decision = decide(obs)
    ctx = BuildContext(
        default_image=config.worker_image,
        auth_hash=short_hash(password or ""),
        default_resources=config.default_resources,
        source_hash=digest,
    )
    if source_problem is None:  # without the spider's code, no pod could start: change nothing
        refused = _converge(kube, crawl, spec, ctx, decision, obs.seeded_before)
        if refused:  # one condition naming every refused child
            rejected = Problem("ChildRejected", "; ".join(p.message for p in refused))
            decision = decide(dataclasses.replace(obs, problems=(*obs.problems, rejected)))

    status: dict[str, Any] = {
        "phase": decision.phase,
        "conditions": merge_conditions(previous.get("conditions"), decision.conditions, generation, now),
        "replicas": obs.replicas,
        "readyReplicas": obs.ready_replicas,
        "selector": selector_string(crawl, "slave"),
    }
    if generation is not None:
        status["observedGeneration"] = generation
    if obs.stats is not None:
        status["stats"] = stats_status(obs.stats)
    if obs.seeded_before or obs.seed.succeeded:
        status["seededSpiderHash"] = spider_hash(spec)
    if obs.existing_data:
        status["existingData"] = obs.existing_data
    if spec.output and extras.delivered is not None:
        status["delivery"] = {
            "sinks": [redact(s.uri) for s in spec.output],
            "delivered": extras.delivered,
            "pending": extras.pending,
            "lag": extras.lag + extras.pending,
        }
    elif spec.output and "delivery" in previous:
        status["delivery"] = previous["delivery"]
    if spec.schedule:
        cron = kube.get("CronJob", crawl.namespace, crawl.cronjob) or {}
        last = (cron.get("status") or {}).get("lastScheduleTime")
        if last:
            status["lastScheduleTime"] = last
    return Outcome(status=status, events=_events(previous, decision))
