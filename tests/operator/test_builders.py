"""Every manifest the builders produce is a valid object of two recent Kubernetes versions, and carries
the contract with the worker (env, CLI, probes) and the secure defaults."""

from __future__ import annotations

import base64
from typing import Any

import kubernetes_validate
import pytest

from kubecrawl_operator.builders import BuildContext, desired_children, redis_secret
from kubecrawl_operator.models import parse_spec
from kubecrawl_operator.naming import CrawlRef, spider_hash

K8S_VERSIONS = ["1.33", "1.37"]
CRAWL = CrawlRef(name="news", namespace="crawls", uid="0b6c6a5e-2f0c-4a8c-9a43-3b3f0d2c9e11")
CTX = BuildContext(default_image="kubecrawl/worker:0.1.0", auth_hash="abcd1234")
RULES = {
    "name": "news",
    "start": {"urls": ["https://example.org/"]},
    "callbacks": {"parse": {"follow": [{"css": "a::attr(href)", "callback": "parse"}]}},
}

SPECS: dict[str, dict[str, Any]] = {
    "rules": {"spider": {"rules": RULES}},
    "module-with-image": {
        "spider": {"module": "myproject.spiders:NewsSpider"},
        "image": "registry.local/news:1",
        "imagePullPolicy": "Always",
    },
    "scheduled-with-zone": {
        "spider": {"rules": RULES},
        "schedule": "*/5 * * * *",
        "timeZone": "Asia/Shanghai",
        "replicas": 4,
    },
    "external-redis": {
        "spider": {"rules": RULES},
        "redis": {"url": "redis://redis.shared:6379/3", "passwordSecretRef": {"name": "r", "key": "p"}},
    },
    "tuned": {
        "spider": {"rules": RULES},
        "resources": {"requests": {"cpu": "500m", "memory": 268435456}, "limits": {"memory": "1Gi"}},
        "redis": {"storage": "20Gi", "storageClassName": "fast", "resources": {"limits": {"memory": "2Gi"}}},
        "politeness": {"concurrency": 64, "perHost": 2, "delaySeconds": 0.25, "obeyRobots": False},
        "dedup": {"requests": "bloom", "itemKey": ["title", "source"]},
        "ssrfAllow": ["10.0.0.0/8"],
        "settings": {"max_retries": "5"},
        "suspend": True,
    },
    # What a cluster administrator asks for (issue 18 §3), including attempts to weaken the pods.
    "placed": {
        "spider": {"rules": RULES},
        "schedule": "@hourly",
        "podTemplate": {
            "labels": {"team": "search", "app.kubernetes.io/instance": "hijack"},
            "annotations": {"cost-center": "42"},
            "nodeSelector": {"pool": "crawlers"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "crawl", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
                        ]
                    }
                }
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "slave"}},
                }
            ],
            "priorityClassName": "batch-low",
            "imagePullSecrets": [{"name": "regcred"}],
            "serviceAccountName": "crawler",
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "seccompProfile": {"type": "Unconfined"}},
        },
        "redis": {
            "retainOnDelete": True,
            "podTemplate": {"nodeSelector": {"pool": "stateful"}, "securityContext": {"fsGroup": 2000}},
        },
    },
    # A Python spider from a ConfigMap, items to PostgreSQL, credentials from Secrets (§4, §5, issue 19).
    "python-source": {
        "spider": {
            "module": "books:BooksSpider",
            "source": {"configMap": "my-spiders"},
            "args": {"category": "poetry", "max_pages": "3"},
        },
        "env": [
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            {"name": "KUBECRAWL_USER_AGENT", "value": "books-bot/1"},
        ],
        "envFrom": [{"secretRef": {"name": "pipeline-creds"}}],
        "output": [
            {
                "uri": "postgresql://crawler@pg.db:5432/items",
                "options": {"table": "books"},
                "secretRef": {"name": "pg"},
            },
            {"uri": "s3://bucket/books/%(round)s.jsonl", "format": "jsonl", "secretRef": {"name": "s3"}},
        ],
    },
    "file-in-package": {
        "spider": {
            "file": "myproj/spiders/books.py:Books",
            "source": {
                "configMap": "proj",
                "items": [
                    {"key": "init.py", "path": "myproj/__init__.py"},
                    {"key": "books.py", "path": "myproj/spiders/books.py"},
                ],
            },
        },
    },
}


def all_manifests(raw: dict[str, Any], replicas: int = 2) -> list[dict[str, Any]]:
    spec = parse_spec(raw)
    children = desired_children(CRAWL, spec, CTX, replicas)
    out = [*children.mutable, children.seed_job, redis_secret(CRAWL, "pw-" + "x" * 40)]
    return out + ([children.cronjob] if children.cronjob else [])


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_child_is_a_valid_kubernetes_object(name: str, version: str) -> None:
    manifests = all_manifests(SPECS[name])
    assert {m["kind"] for m in manifests} >= {"Deployment", "Job", "Secret"}
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def pod_specs(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in manifests:
        spec = m.get("spec", {})
        if m["kind"] == "CronJob":
            out.append(spec["jobTemplate"]["spec"]["template"]["spec"])
        elif "template" in spec:
            out.append(spec["template"]["spec"])
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_pods_run_non_root_read_only_without_capabilities(name: str) -> None:
    pods = pod_specs(all_manifests(SPECS[name]))
    assert pods
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            assert any(v["mountPath"] == "/tmp" for v in container["volumeMounts"]), "a writable /tmp"


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_slave_env_follows_the_worker_contract() -> None:
    spec = parse_spec(SPECS["tuned"])
    deployment = desired_children(CRAWL, spec, CTX, 3).mutable[-1]
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    env = env_of(deployment)
    assert env["KUBECRAWL_ROLE"] == "slave" and env["KUBECRAWL_CRAWL"] == "news"
    assert env["KUBECRAWL_SPIDER"] == "/etc/kubecrawl/spider/spider.yaml"
    assert env["KUBECRAWL_REDIS_URL"] == "redis://news-redis:6379/0"
    assert env["KUBECRAWL_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "news-redis-auth", "key": "password"}}
    assert (env["KUBECRAWL_CONCURRENCY"], env["KUBECRAWL_CONCURRENCY_PER_HOST"], env["KUBECRAWL_DOWNLOAD_DELAY"]) == (
        "64",
        "2",
        "0.25",
    )
    assert (env["KUBECRAWL_OBEY_ROBOTS"], env["KUBECRAWL_DEDUP"], env["KUBECRAWL_ITEM_KEY"]) == (
        "false",
        "bloom",
        "title,source",
    )
    assert env["KUBECRAWL_SSRF_ALLOW"] == "10.0.0.0/8" and env["KUBECRAWL_MAX_RETRIES"] == "5"
    assert env["KUBECRAWL_HEALTH_PORT"] == "8080"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["crawl", "--role", "slave"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


def test_module_spider_runs_from_its_image_without_a_configmap() -> None:
    spec = parse_spec(SPECS["module-with-image"])
    children = desired_children(CRAWL, spec, CTX, 1)
    assert "ConfigMap" not in {m["kind"] for m in children.mutable}
    env = env_of(children.seed_job)
    assert env["KUBECRAWL_SPIDER"] == "myproject.spiders:NewsSpider" and env["KUBECRAWL_ROLE"] == "master"
    assert children.seed_job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/news:1"


def test_seed_job_name_follows_the_spider_so_a_changed_spider_reseeds() -> None:
    a = parse_spec(SPECS["rules"])
    b = parse_spec({"spider": {"rules": {**RULES, "start": {"urls": ["https://example.org/other"]}}}})
    same_spider_more_replicas = parse_spec({**SPECS["rules"], "replicas": 9})
    assert spider_hash(a) != spider_hash(b)
    assert spider_hash(a) == spider_hash(same_spider_more_replicas)
    job = desired_children(CRAWL, a, CTX, 1).seed_job
    assert job["metadata"]["name"] == f"news-seed-{spider_hash(a)}" and len(job["metadata"]["name"]) <= 63


def test_cronjob_forbids_overlapping_rounds_and_follows_suspend() -> None:
    scheduled = parse_spec(SPECS["scheduled-with-zone"])
    cron = desired_children(CRAWL, scheduled, CTX, 1).cronjob
    assert cron is not None
    assert (cron["spec"]["schedule"], cron["spec"]["concurrencyPolicy"], cron["spec"]["suspend"]) == (
        "*/5 * * * *",
        "Forbid",
        False,
    )
    assert cron["spec"]["timeZone"] == "Asia/Shanghai"
    suspended = parse_spec({**SPECS["scheduled-with-zone"], "suspend": True})
    assert desired_children(CRAWL, suspended, CTX, 0).cronjob["spec"]["suspend"] is True  # type: ignore[index]
    assert desired_children(CRAWL, parse_spec(SPECS["rules"]), CTX, 1).cronjob is None


def test_redis_is_durable_password_protected_and_fenced() -> None:
    secret = redis_secret(CRAWL, "s3cret")
    conf = base64.b64decode(secret["data"]["redis.conf"]).decode()
    assert "requirepass s3cret" in conf and "appendonly yes" in conf and "appendfsync everysec" in conf
    assert "maxmemory-policy noeviction" in conf
    children = desired_children(CRAWL, parse_spec(SPECS["tuned"]), CTX, 1).mutable
    sts = next(m for m in children if m["kind"] == "StatefulSet")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"
    redis_container = sts["spec"]["template"]["spec"]["containers"][0]
    assert (
        "s3cret" not in str(redis_container) and redis_container["readinessProbe"]["exec"]["command"][0] == "redis-cli"
    )
    policy = next(m for m in children if m["kind"] == "NetworkPolicy")
    sources = policy["spec"]["ingress"][0]["from"]
    assert sources[0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kubecrawl",
        "app.kubernetes.io/instance": "news",
    }
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"


def test_external_redis_means_no_redis_children() -> None:
    children = desired_children(CRAWL, parse_spec(SPECS["external-redis"]), CTX, 1).mutable
    kinds = {m["kind"] for m in children}
    assert kinds == {"ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget"}
    # the one NetworkPolicy is the workers' egress policy, not the (absent) Redis' ingress policy
    assert [m["metadata"]["name"] for m in children if m["kind"] == "NetworkPolicy"] == ["news-workers"]


def test_children_are_owned_and_labelled() -> None:
    for manifest in all_manifests(SPECS["scheduled-with-zone"]):
        meta = manifest["metadata"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "kubecrawl.io/v1alpha1",
                "kind": "Crawl",
                "name": "news",
                "uid": CRAWL.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "kubecrawl-operator"
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"} <= set(
            meta["labels"]
        )
