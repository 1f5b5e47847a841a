"""Names, labels and owner references of a crawl's children (one place, so they never drift)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubecrawl_operator.models import GROUP, KIND, VERSION, CrawlSpec

MANAGED_BY = "kubecrawl-operator"
APP_NAME = "kubecrawl"
#: Label of the operator's own pods, admitted to every crawl's Redis by its NetworkPolicy.
OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "kubecrawl-operator"}
AUTH_HASH_ANNOTATION = f"{GROUP}/redis-auth-hash"
SPIDER_HASH_ANNOTATION = f"{GROUP}/spider-hash"

REDIS_PORT = 6379
HEALTH_PORT = 8080
SPIDER_DIR = "/etc/kubecrawl/spider"
SPIDER_FILE = "spider.yaml"


@dataclass(frozen=True)
class CrawlRef:
    """Identity of a Crawl object: all a builder needs besides its spec."""

    name: str
    namespace: str
    uid: str

    @property
    def secret(self) -> str:
        return f"{self.name}-redis-auth"

    @property
    def redis(self) -> str:
        return f"{self.name}-redis"

    @property
    def spider_configmap(self) -> str:
        return f"{self.name}-spider"

    @property
    def slave(self) -> str:
        return f"{self.name}-slave"

    @property
    def cronjob(self) -> str:
        return f"{self.name}-schedule"

    @property
    def network_policy(self) -> str:
        return f"{self.name}-redis"

    def seed_job(self, spider_hash: str) -> str:
        return f"{self.name}-seed-{spider_hash}"

    @property
    def internal_redis_url(self) -> str:
        return f"redis://{self.redis}:{REDIS_PORT}/0"


def selector_labels(crawl: CrawlRef, component: str) -> dict[str, str]:
    """The labels a child's pods are selected by (immutable in Deployments/StatefulSets)."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": crawl.name,
        "app.kubernetes.io/component": component,
    }


def labels(crawl: CrawlRef, component: str) -> dict[str, str]:
    return {**selector_labels(crawl, component), "app.kubernetes.io/managed-by": MANAGED_BY}


def selector_string(crawl: CrawlRef, component: str) -> str:
    """`status.selector` of the scale subresource (an HPA finds the slaves' pods by it)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(crawl, component).items()))


def owner_reference(crawl: CrawlRef) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": crawl.name,
        "uid": crawl.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(crawl: CrawlRef, name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": crawl.namespace,
        "labels": labels(crawl, component),
        "ownerReferences": [owner_reference(crawl)],
        **extra,
    }


def short_hash(value: Any, length: int = 8) -> str:
    """A stable hex digest of a JSON-able value (dict keys sorted)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def spider_hash(spec: CrawlSpec) -> str:
    """Changes when what the seed job would seed changes: the spider, and the image that runs it."""
    return short_hash({"spider": spec.spider.model_dump(mode="json", exclude_none=True), "image": spec.image})
