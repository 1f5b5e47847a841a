"""The crawl's own Redis: auth Secret, headless Service, StatefulSet (AOF, requirepass) and NetworkPolicy."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from kubecrawl_operator.builders.podtemplate import apply_pod_template
from kubecrawl_operator.builders.resources import redis_maxmemory
from kubecrawl_operator.builders.security import container_security_context, pod_security_context
from kubecrawl_operator.models import CrawlSpec
from kubecrawl_operator.naming import (
    AUTH_HASH_ANNOTATION,
    OPERATOR_POD_LABELS,
    REDIS_PORT,
    CrawlRef,
    metadata,
    selector_labels,
)

if TYPE_CHECKING:
    from kubecrawl_operator.builders.workers import BuildContext

REDIS_USER = 999
PASSWORD_KEY = "password"
CONFIG_KEY = "redis.conf"
CONFIG_DIR = "/etc/redis"


def redis_config(password: str) -> str:
    """redis.conf: durable (AOF every second), password-protected, never evicting queue data."""
    return "\n".join(
        [
            f"port {REDIS_PORT}",
            "bind 0.0.0.0 -::*",
            "protected-mode no",  # the password protects it; NetworkPolicy limits who can connect
            f"requirepass {password}",
            "dir /data",
            "appendonly yes",
            "appendfsync everysec",
            "maxmemory-policy noeviction",  # evicting queue entries would silently lose requests
            "set-max-intset-entries 4096",  # compact integer fingerprint buckets (see DESIGN §2)
            "",
        ]
    )


def redis_secret(crawl: CrawlRef, password: str) -> dict[str, Any]:
    """Created once per crawl; the operator never rewrites it (no accidental rotation)."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(crawl, crawl.secret, "redis"),
        "type": "Opaque",
        "data": {PASSWORD_KEY: b64(password), CONFIG_KEY: b64(redis_config(password))},
    }


def redis_service(crawl: CrawlRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(crawl, crawl.redis, "redis"),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(crawl, "redis"),
            # publishNotReadyAddresses is left at its default (false): the API server never stores a
            # false there (omitempty), so spelling it out made every pass see drift and PATCH the Service.
            "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
        },
    }


def redis_statefulset(crawl: CrawlRef, spec: CrawlSpec, ctx: BuildContext) -> dict[str, Any]:
    pod_labels = selector_labels(crawl, "redis")
    resources = ctx.resources("redis", spec.redis.resources)
    command = ["redis-server", f"{CONFIG_DIR}/{CONFIG_KEY}"]
    maxmemory = redis_maxmemory(resources)
    if maxmemory is not None:  # on the command line, not in the Secret's redis.conf (written once)
        command += ["--maxmemory", str(maxmemory)]
    container: dict[str, Any] = {
        "name": "redis",
        "image": spec.redis.image,
        "command": command,
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        # redis-cli reads the password from REDISCLI_AUTH: never on a command line.
        "env": [
            {
                "name": "REDISCLI_AUTH",
                "valueFrom": {"secretKeyRef": {"name": crawl.secret, "key": PASSWORD_KEY}},
            }
        ],
        "readinessProbe": {
            "exec": {"command": ["redis-cli", "-p", str(REDIS_PORT), "ping"]},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "redis"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": container_security_context(),
    }
    if resources:
        container["resources"] = resources
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.redis.storage}},
    }
    if spec.redis.storage_class_name:
        claim_spec["storageClassName"] = spec.redis.storage_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(crawl, crawl.redis, "redis"),
        "spec": {
            "serviceName": crawl.redis,
            "replicas": 1,
            "selector": {"matchLabels": pod_labels},
            # The PVC goes with the Crawl (the StatefulSet, which the Crawl owns, owns it) unless retained.
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain" if spec.redis.retain_on_delete else "Delete",
                "whenScaled": "Retain",
            },
            "template": apply_pod_template(
                {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {AUTH_HASH_ANNOTATION: ctx.auth_hash},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": pod_security_context(REDIS_USER),
                        "terminationGracePeriodSeconds": 30,
                        "containers": [container],
                        "volumes": [
                            {
                                "name": "config",
                                "secret": {
                                    "secretName": crawl.secret,
                                    "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
                                },
                            },
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
                spec.redis.pod_template,
            ),
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": pod_labels}, "spec": claim_spec}],
        },
    }


def redis_network_policy(crawl: CrawlRef) -> dict[str, Any]:
    """Only this crawl's pods (and the operator, which reads stats) may reach its Redis."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(crawl, crawl.network_policy, "redis"),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(crawl, "redis")},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/name": "kubecrawl",
                                    "app.kubernetes.io/instance": crawl.name,
                                }
                            }
                        },
                        {
                            "namespaceSelector": {},
                            "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)},
                        },
                    ],
                    "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
                }
            ],
        },
    }
