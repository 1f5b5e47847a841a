"""The Crawl CustomResourceDefinition, generated from the pydantic spec model and the worker's spider schema.

`scripts/gen_crd.py` writes it to crds/crawl.yaml; a test fails when that file is stale.
"""

from __future__ import annotations

import logging
from typing import Any

from kubecrawl_operator.models import GROUP, KIND, MAX_NAME_LENGTH, PLURAL, SHORT_NAMES, SINGULAR, VERSION, CrawlSpec
from kubecrawl_operator.structural import to_structural

logger = logging.getLogger(__name__)

PHASES = ["Pending", "Seeding", "Running", "Idle", "Completed", "Suspended", "Failed"]


def spider_rules_schema() -> dict[str, Any] | None:
    """The worker's declarative spider schema (structural), or None while the worker lacks it."""
    try:
        from kubecrawl.rules import spider_rules_json_schema  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        logger.warning("kubecrawl.rules is not importable: spec.spider.rules stays schemaless")
        return None
    return to_structural(spider_rules_json_schema())


def spec_schema() -> dict[str, Any]:
    schema = to_structural(CrawlSpec.model_json_schema(by_alias=True, mode="validation"))
    schema["description"] = (CrawlSpec.__doc__ or "").strip()
    spider = schema["properties"]["spider"]
    spider["oneOf"] = [{"required": ["rules"]}, {"required": ["module"]}, {"required": ["file"]}]
    spider["x-kubernetes-validations"] = [
        {
            "rule": "(has(self.rules) ? 1 : 0) + (has(self.module) ? 1 : 0) + (has(self.file) ? 1 : 0) == 1",
            "message": "set exactly one of spider.rules, spider.module and spider.file",
        },
        {"rule": "!has(self.file) || has(self.source)", "message": "spider.file names a file of spider.source"},
        {
            "rule": "!has(self.rules) || !has(self.source)",
            "message": "spider.source holds Python or spider files: use spider.module or spider.file with it",
        },
    ]
    rules = spider_rules_schema()
    if rules is not None:
        rules.pop("title", None)
        spider["properties"]["rules"] = {**rules, "description": spider["properties"]["rules"]["description"]}
    schema["properties"]["redis"]["x-kubernetes-validations"] = [
        {"rule": "!has(self.passwordSecretRef) || has(self.url)", "message": "redis.passwordSecretRef needs redis.url"}
    ]
    return schema


def _condition_schema() -> dict[str, Any]:
    def string(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": string(
                "Ready, Seeded, Progressing, Degraded, RoundStuck, Complete, SecurityContextEnforced, ExistingData or DeliveryFailed."
            ),
            "status": {
                "type": "string",
                "enum": ["True", "False", "Unknown"],
                "description": "True, False or Unknown.",
            },
            "reason": string("CamelCase reason."),
            "message": string("What happened and what to do."),
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the status last flipped.",
            },
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The .metadata.generation the condition describes.",
            },
        },
    }


def status_schema() -> dict[str, Any]:
    def counter(description: str) -> dict[str, Any]:
        return {"type": "integer", "format": "int64", "description": description}

    return {
        "type": "object",
        "description": "What the operator observed; written by the operator only (the status subresource).",
        # kopf keeps its own bookkeeping under status; without this the API server prunes it.
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "phase": {
                "type": "string",
                "enum": PHASES,
                "description": "Where the crawl is: " + ", ".join(PHASES) + ".",
            },
            "conditions": {
                "description": "Ready, Seeded, Progressing, Degraded, RoundStuck and Complete (metav1.Condition).",
                "type": "array",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "observedGeneration": counter("The .metadata.generation the status describes."),
            "replicas": {"type": "integer", "format": "int32", "description": "Slave pods now."},
            "readyReplicas": {"type": "integer", "format": "int32", "description": "Slave pods Ready now."},
            "selector": {"type": "string", "description": "Label selector of the slave pods (scale)."},
            "lastScheduleTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the schedule last started a round.",
            },
            "seededSpiderHash": {"type": "string", "description": "Spider hash of the last finished seed Job."},
            "existingData": {
                "type": "string",
                "description": "Set when the crawl's Redis already held an earlier Crawl's data when this one first saw it.",
            },
            "delivery": {
                "type": "object",
                "description": "spec.output delivery, from the feeds consumer group of the item stream.",
                "properties": {
                    "sinks": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "The sinks (redacted URIs).",
                    },
                    "delivered": counter(
                        "Items in every sink (an item is acknowledged once all sinks wrote it, so per sink the same)."
                    ),
                    "pending": counter("Items a slave is writing (or retrying) to the sinks."),
                    "lag": counter("Items in Redis not yet in every sink (pending + not yet read)."),
                },
            },
            "stats": {
                "type": "object",
                "description": "Counters read from the crawl's Redis on every pass.",
                "properties": {
                    "queued": counter("Requests waiting in the queue."),
                    "inFlight": counter("Requests leased by a worker."),
                    "seen": counter("Request fingerprints recorded."),
                    "pages": counter("Pages downloaded."),
                    "items": counter("Items stored."),
                    "errors": counter("Failed requests."),
                    "pagesPerMin": {"type": "number", "description": "Recent download rate."},
                    "workers": counter("Workers with a live heartbeat."),
                    "seededRound": counter("Last round a master finished seeding."),
                    "pushed": counter(
                        "Requests queued from outside the crawl (kubecrawl push, kubecrawl.queue, a RedisSpider's"
                        " start URL list), duplicates not included."
                    ),
                },
            },
        },
    }


def printer_columns() -> list[dict[str, Any]]:
    def col(name: str, path: str, type_: str = "integer", priority: int = 0) -> dict[str, Any]:
        column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
        if priority:
            column["priority"] = priority
        return column

    return [
        col("Phase", ".status.phase", "string"),
        col("Replicas", ".spec.replicas"),
        col("Ready", ".status.readyReplicas"),
        col("Pages", ".status.stats.pages"),
        col("Items", ".status.stats.items"),
        col("Queued", ".status.stats.queued"),
        col("Schedule", ".spec.schedule", "string"),
        col("Age", ".metadata.creationTimestamp", "date"),
        col("Reason", '.status.conditions[?(@.type=="Ready")].reason', "string", priority=1),
        col("Delivered", ".status.delivery.delivered", priority=1),
        col("Lag", ".status.delivery.lag", priority=1),
    ]


def crawl_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition (apiextensions.k8s.io/v1)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "kubecrawl", "app.kubernetes.io/part-of": "kubecrawl"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["kubecrawl"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A distributed crawl: a spider, its Redis, a seed job and scalable slaves.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [
                                {
                                    "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                                    "message": f"a Crawl's name must be at most {MAX_NAME_LENGTH} characters",
                                }
                            ],
                            "properties": {
                                "apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}"},
                                "kind": {"type": "string", "description": KIND},
                                # only {type: object}: the API server refuses anything else under metadata
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }
