"""The crawl's workers: spider ConfigMap, seed Job (master), slave Deployment and round CronJob."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from kubecrawl_operator.builders.redis import PASSWORD_KEY
from kubecrawl_operator.builders.resources import DEFAULT_RESOURCES, effective_resources
from kubecrawl_operator.builders.security import container_security_context, pod_security_context
from kubecrawl_operator.models import CrawlSpec
from kubecrawl_operator.naming import (
    AUTH_HASH_ANNOTATION,
    HEALTH_PORT,
    SPIDER_DIR,
    SPIDER_FILE,
    SPIDER_HASH_ANNOTATION,
    CrawlRef,
    metadata,
    selector_labels,
    spider_hash,
)

WORKER_USER = 10001
#: Environment keys the operator owns; `spec.settings` may not override them.
RESERVED_SETTINGS = frozenset({"role", "crawl", "redis_url", "redis_password", "spider", "health_port"})


@dataclass(frozen=True)
class BuildContext:
    """Operator-side inputs of the builders that are not in the spec."""

    default_image: str
    auth_hash: str = ""  # hash of the Redis password: pods roll when the Secret is regenerated
    #: role (redis, master, slave) -> requests/limits the spec does not override
    default_resources: dict[str, dict[str, dict[str, str]]] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))

    def resources(self, role: str, override: Any) -> dict[str, dict[str, str]]:
        return effective_resources(self.default_resources.get(role) or DEFAULT_RESOURCES[role], override)


def spider_configmap(crawl: CrawlRef, spec: CrawlSpec) -> dict[str, Any] | None:
    if spec.spider.rules is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(crawl, crawl.spider_configmap, "spider"),
        "data": {SPIDER_FILE: yaml.safe_dump(spec.spider.rules, sort_keys=True, allow_unicode=True)},
    }


def _redis_env(crawl: CrawlRef, spec: CrawlSpec) -> list[dict[str, Any]]:
    url = spec.redis.url or crawl.internal_redis_url
    env: list[dict[str, Any]] = [{"name": "KUBECRAWL_REDIS_URL", "value": url}]
    if spec.redis.url is None:
        ref = {"name": crawl.secret, "key": PASSWORD_KEY}
    elif spec.redis.password_secret_ref is not None:
        ref = spec.redis.password_secret_ref.model_dump()
    else:
        return env
    env.append({"name": "KUBECRAWL_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": ref}})
    return env


def worker_env(crawl: CrawlRef, spec: CrawlSpec, role: str) -> list[dict[str, Any]]:
    """The `KUBECRAWL_*` environment of docs/contracts.md §2 (the password only via secretKeyRef)."""
    spider = f"{SPIDER_DIR}/{SPIDER_FILE}" if spec.spider.rules is not None else spec.spider.module
    pol = spec.politeness
    values: dict[str, str] = {
        f"KUBECRAWL_{key.upper()}": value
        for key, value in sorted(spec.settings.items())
        if key not in RESERVED_SETTINGS
    }
    values.update(
        {
            "KUBECRAWL_ROLE": role,
            "KUBECRAWL_CRAWL": crawl.name,
            "KUBECRAWL_SPIDER": str(spider),
            "KUBECRAWL_CONCURRENCY": str(pol.concurrency),
            "KUBECRAWL_CONCURRENCY_PER_HOST": str(pol.per_host),
            "KUBECRAWL_DOWNLOAD_DELAY": f"{pol.delay_seconds:g}",
            "KUBECRAWL_OBEY_ROBOTS": "true" if pol.obey_robots else "false",
            "KUBECRAWL_DEDUP": spec.dedup.requests,
            "KUBECRAWL_LOG_FORMAT": "json",
        }
    )
    if spec.dedup.item_key:  # only when the Crawl sets it: the spider's own item_key wins otherwise
        values["KUBECRAWL_ITEM_KEY"] = ",".join(spec.dedup.item_key)
    if spec.ssrf_allow:
        values["KUBECRAWL_SSRF_ALLOW"] = ",".join(spec.ssrf_allow)
    if role == "slave":
        values["KUBECRAWL_HEALTH_PORT"] = str(HEALTH_PORT)
    env = [{"name": k, "value": v} for k, v in values.items()]
    return env + _redis_env(crawl, spec)


def _pod_spec(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, role: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image or ctx.default_image,
        "args": ["crawl", "--role", role],
        "env": worker_env(crawl, spec, role),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": container_security_context(),
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    if role == "slave":
        resources = ctx.resources("slave", spec.resources)
    else:
        resources = ctx.resources("master", spec.master_resources or spec.resources)
    if resources:
        container["resources"] = resources
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if spec.spider.rules is not None:
        container["volumeMounts"].append({"name": "spider", "mountPath": SPIDER_DIR, "readOnly": True})
        volumes.append({"name": "spider", "configMap": {"name": crawl.spider_configmap}})
    if role == "slave":
        container["ports"] = [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}]
        container["livenessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "health"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
        }
        container["readinessProbe"] = {
            "httpGet": {"path": "/readyz", "port": "health"},
            "periodSeconds": 5,
        }
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(WORKER_USER),
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
        "containers": [container],
        "volumes": volumes,
    }


def _pod_template(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, role: str, component: str) -> dict[str, Any]:
    pod_spec = _pod_spec(crawl, spec, ctx, role)
    if role != "slave":
        pod_spec["restartPolicy"] = "Never"
    return {
        "metadata": {
            "labels": selector_labels(crawl, component),
            "annotations": {AUTH_HASH_ANNOTATION: ctx.auth_hash, SPIDER_HASH_ANNOTATION: spider_hash(spec)},
        },
        "spec": pod_spec,
    }


def _master_job_spec(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, component: str) -> dict[str, Any]:
    return {
        "backoffLimit": 4,
        "activeDeadlineSeconds": spec.master_deadline_seconds,
        "template": _pod_template(crawl, spec, ctx, "master", component),
    }


def seed_job(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext) -> dict[str, Any]:
    """Named after the spider's hash: a changed spider is a new Job, hence a reseed."""
    digest = spider_hash(spec)
    meta = metadata(crawl, crawl.seed_job(digest), "seed", annotations={SPIDER_HASH_ANNOTATION: digest})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": _master_job_spec(crawl, spec, ctx, "seed"),
    }


def slave_deployment(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(crawl, crawl.slave, "slave"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(crawl, "slave")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": _pod_template(crawl, spec, ctx, "slave", "slave"),
        },
    }


def schedule_cronjob(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, seeded: bool = True) -> dict[str, Any]:
    """Incremental rounds: the CronJob re-runs the master, which seeds round R+1.

    Suspended until the seed Job of the current spider has finished: a round started while the
    first seeding still runs would seed the same start requests twice over.
    """
    assert spec.schedule is not None
    cron_spec: dict[str, Any] = {
        "schedule": spec.schedule,
        "concurrencyPolicy": "Forbid",
        "suspend": spec.suspend or not seeded,
        "startingDeadlineSeconds": 300,
        "successfulJobsHistoryLimit": 1,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": selector_labels(crawl, "round")},
            "spec": _master_job_spec(crawl, spec, ctx, "round"),
        },
    }
    if spec.time_zone:
        cron_spec["timeZone"] = spec.time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(crawl, crawl.cronjob, "schedule"),
        "spec": cron_spec,
    }
