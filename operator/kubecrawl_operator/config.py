"""Operator settings, read once from the environment (the CLI sets them from its flags)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from kubecrawl_operator.builders.resources import DEFAULT_RESOURCES, parse_defaults
from kubecrawl_operator.models import DEFAULT_WORKER_IMAGE


class OperatorConfig(BaseModel):
    worker_image: str = Field(default=DEFAULT_WORKER_IMAGE, description="Worker image when spec.image is unset.")
    interval: float = Field(default=15.0, gt=0, description="Seconds between re-reconciles (and stats reads).")
    redis_timeout: float = Field(default=3.0, gt=0, description="Socket timeout of the stats read.")
    cluster_domain: str = Field(default="svc", description="Suffix of in-cluster Redis host names.")
    default_resources: dict[str, dict[str, dict[str, str]]] = Field(
        default_factory=lambda: {k: {s: dict(q) for s, q in v.items()} for k, v in DEFAULT_RESOURCES.items()},
        description="Requests/limits of redis, master and slave containers a Crawl's spec does not override.",
    )

    @classmethod
    def from_env(cls) -> OperatorConfig:
        env = os.environ
        values: dict[str, str] = {}
        if env.get("KUBECRAWL_WORKER_IMAGE"):
            values["worker_image"] = env["KUBECRAWL_WORKER_IMAGE"]
        if env.get("KUBECRAWL_OPERATOR_INTERVAL"):
            values["interval"] = env["KUBECRAWL_OPERATOR_INTERVAL"]
        if env.get("KUBECRAWL_OPERATOR_REDIS_TIMEOUT"):
            values["redis_timeout"] = env["KUBECRAWL_OPERATOR_REDIS_TIMEOUT"]
        if env.get("KUBECRAWL_OPERATOR_CLUSTER_DOMAIN"):
            values["cluster_domain"] = env["KUBECRAWL_OPERATOR_CLUSTER_DOMAIN"]
        config = cls.model_validate(values)
        if env.get("KUBECRAWL_OPERATOR_DEFAULT_RESOURCES"):
            config = config.model_copy(
                update={"default_resources": parse_defaults(env["KUBECRAWL_OPERATOR_DEFAULT_RESOURCES"])}
            )
        return config
