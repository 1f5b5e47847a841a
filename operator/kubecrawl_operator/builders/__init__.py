"""Pure builders: a Crawl's spec in, Kubernetes manifests (plain dicts) out. No API calls here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubecrawl_operator.builders.policy import slave_disruption_budget, worker_network_policy
from kubecrawl_operator.builders.redis import (
    redis_config,
    redis_network_policy,
    redis_secret,
    redis_service,
    redis_statefulset,
)
from kubecrawl_operator.builders.workers import (
    BuildContext,
    schedule_cronjob,
    seed_job,
    slave_deployment,
    spider_configmap,
    worker_env,
)
from kubecrawl_operator.models import CrawlSpec
from kubecrawl_operator.naming import CrawlRef

__all__ = [
    "BuildContext",
    "Children",
    "desired_children",
    "redis_config",
    "redis_network_policy",
    "redis_secret",
    "redis_service",
    "redis_statefulset",
    "schedule_cronjob",
    "seed_job",
    "slave_deployment",
    "slave_disruption_budget",
    "spider_configmap",
    "worker_env",
    "worker_network_policy",
]


@dataclass(frozen=True)
class Children:
    """The desired children of one crawl, except the Secret (created once, never rebuilt)."""

    mutable: list[dict[str, Any]]  # kept equal to the desired state (create or patch)
    seed_job: dict[str, Any]  # created once per spider hash; Jobs are immutable
    cronjob: dict[str, Any] | None  # None: no schedule, delete any existing


def desired_children(
    crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, slave_replicas: int, seeded: bool = True
) -> Children:
    """Everything the crawl should own, given the replicas the status logic decided on."""
    mutable: list[dict[str, Any]] = []
    if not spec.is_external_redis:
        mutable += [
            redis_service(crawl),
            redis_statefulset(crawl, spec, ctx),
            redis_network_policy(crawl),
        ]
    configmap = spider_configmap(crawl, spec)
    if configmap is not None:
        mutable.append(configmap)
    # Before the slaves: their egress policy and disruption budget exist by the time the first slave does.
    mutable += [m for m in (worker_network_policy(crawl, spec), slave_disruption_budget(crawl, spec)) if m]
    mutable.append(slave_deployment(crawl, spec, ctx, slave_replicas))
    cronjob = schedule_cronjob(crawl, spec, ctx, seeded) if spec.schedule else None
    return Children(mutable=mutable, seed_job=seed_job(crawl, spec, ctx), cronjob=cronjob)
