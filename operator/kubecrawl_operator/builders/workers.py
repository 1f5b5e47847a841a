"""The crawl's workers: spider ConfigMap, seed Job (master), slave Deployment and round CronJob."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubecrawl_operator.builders.podtemplate import apply_pod_template
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
#: `spec.settings` keys that a dedicated spec field also sets: one of the two, never both.
SETTINGS_WITH_SPEC_FIELDS = {
    "concurrency": "spec.politeness.concurrency",
    "concurrency_per_host": "spec.politeness.perHost",
    "download_delay": "spec.politeness.delaySeconds",
    "obey_robots": "spec.politeness.obeyRobots",
    "dedup": "spec.dedup.requests",
    "item_key": "spec.dedup.itemKey",
    "ssrf_allow": "spec.ssrfAllow",
    "feeds": "spec.output",
}
#: Where `spec.spider.source` is mounted (and put on PYTHONPATH).
SOURCE_DIR = "/etc/kubecrawl/source"
#: Pod annotation: hash of the spider source ConfigMap's data, so changed spider code rolls the pods.
SOURCE_HASH_ANNOTATION = "kubecrawl.io/spider-source-hash"


@dataclass(frozen=True)
class BuildContext:
    """Operator-side inputs of the builders that are not in the spec."""

    default_image: str
    auth_hash: str = ""  # hash of the Redis password: pods roll when the Secret is regenerated
    #: role (redis, master, slave) -> requests/limits the spec does not override
    default_resources: dict[str, dict[str, dict[str, str]]] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    source_hash: str = ""  # hash of spec.spider.source's ConfigMap data (pods roll when the code changes)

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


def _spider_ref(spec: CrawlSpec) -> str:
    if spec.spider.rules is not None:
        return f"{SPIDER_DIR}/{SPIDER_FILE}"
    if spec.spider.file is not None:
        return f"{SOURCE_DIR}/{spec.spider.file}"
    return str(spec.spider.module)


def user_settings(spec: CrawlSpec) -> dict[str, str]:
    """Only what the Crawl sets: unset fields leave the spider's custom_settings (or the worker's defaults)."""
    pol, dedup = spec.politeness, spec.dedup
    values: dict[str, str] = {}
    if pol.concurrency is not None:
        values["concurrency"] = str(pol.concurrency)
    if pol.per_host is not None:
        values["concurrency_per_host"] = str(pol.per_host)
    if pol.delay_seconds is not None:
        values["download_delay"] = f"{pol.delay_seconds:g}"
    if pol.obey_robots is not None:
        values["obey_robots"] = "true" if pol.obey_robots else "false"
    if dedup.requests is not None:
        values["dedup"] = dedup.requests
    if dedup.item_key:  # only when the Crawl sets it: the spider's own item_key wins otherwise
        values["item_key"] = ",".join(dedup.item_key)
    if spec.ssrf_allow:
        values["ssrf_allow"] = ",".join(spec.ssrf_allow)
    values.setdefault("log_format", "json")  # pods' logs are read by machines; spec.settings may change it
    values.update({k: v for k, v in spec.settings.items() if k not in RESERVED_SETTINGS})
    return values


def worker_env(crawl: CrawlRef, spec: CrawlSpec, role: str) -> list[dict[str, Any]]:
    """The `KUBECRAWL_*` environment of docs/contracts.md §2 (the password only via secretKeyRef), then
    `spec.env` and the Secrets of `spec.output` (credentials of the sinks)."""
    values: dict[str, str] = {
        "KUBECRAWL_ROLE": role,
        "KUBECRAWL_CRAWL": crawl.name,
        "KUBECRAWL_SPIDER": _spider_ref(spec),
    }
    values.update({f"KUBECRAWL_{key.upper()}": value for key, value in sorted(user_settings(spec).items())})
    if role == "slave":
        values["KUBECRAWL_HEALTH_PORT"] = str(HEALTH_PORT)
    env = [{"name": k, "value": v} for k, v in values.items()]
    if spec.spider.source is not None:
        env.append({"name": "PYTHONPATH", "value": SOURCE_DIR})
    env += _redis_env(crawl, spec)
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in spec.env]
    return env


def _env_from(spec: CrawlSpec, role: str) -> list[dict[str, Any]]:
    out = [e.model_dump(by_alias=True, exclude_none=True) for e in spec.env_from]
    if role == "slave":  # only slaves deliver to the sinks
        seen = set()
        for sink in spec.output:
            if sink.secret_ref is not None and sink.secret_ref.name not in seen:
                seen.add(sink.secret_ref.name)
                out.append({"secretRef": {"name": sink.secret_ref.name}})
    return out


def feeds_setting(spec: CrawlSpec) -> dict[str, dict[str, Any]]:
    """`spec.output` as the worker's `feeds` setting (Scrapy's FEEDS shape: URI -> options)."""
    feeds: dict[str, dict[str, Any]] = {}
    for sink in spec.output:
        options = dict(sink.options)
        if sink.format is not None:
            options["format"] = sink.format
        feeds[sink.uri] = options
    return feeds


def _args(spec: CrawlSpec, role: str) -> list[str]:
    args = ["crawl", "--role", role]
    for name, value in sorted(spec.spider.args.items()):
        args += ["-a", f"{name}={value}"]
    if role == "slave" and spec.output:
        args += ["-s", "feeds=" + json.dumps(feeds_setting(spec), sort_keys=True, separators=(",", ":"))]
    return args


def _pod_spec(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext, role: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image or ctx.default_image,
        "args": _args(spec, role),
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
    env_from = _env_from(spec, role)
    if env_from:
        container["envFrom"] = env_from
    if spec.spider.rules is not None:
        container["volumeMounts"].append({"name": "spider", "mountPath": SPIDER_DIR, "readOnly": True})
        volumes.append({"name": "spider", "configMap": {"name": crawl.spider_configmap}})
    source = spec.spider.source
    if source is not None:
        container["volumeMounts"].append({"name": "spider-source", "mountPath": SOURCE_DIR, "readOnly": True})
        cm: dict[str, Any] = {"name": source.config_map}
        if source.items:
            cm["items"] = [{"key": i.key, "path": i.path} for i in source.items]
        volumes.append({"name": "spider-source", "configMap": cm})
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
    annotations = {AUTH_HASH_ANNOTATION: ctx.auth_hash, SPIDER_HASH_ANNOTATION: spider_hash(spec)}
    if ctx.source_hash:
        annotations[SOURCE_HASH_ANNOTATION] = ctx.source_hash
    template = {
        "metadata": {"labels": selector_labels(crawl, component), "annotations": annotations},
        "spec": pod_spec,
    }
    return apply_pod_template(template, spec.pod_template)


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
