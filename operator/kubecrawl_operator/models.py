"""The Crawl resource's spec as pydantic models: the one source of truth for crds/crawl.yaml.

Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.
`scripts/gen_crd.py` turns these models into the CRD's structural OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "kubecrawl.io"
VERSION = "v1alpha1"
KIND = "Crawl"
PLURAL = "crawls"
SINGULAR = "crawl"
SHORT_NAMES = ["kc"]

DEFAULT_WORKER_IMAGE = "kubecrawl/worker:0.1.0"
#: Leaves room for "-seed-<8 hex>" in Job names (63) and the CronJob name limit (52).
MAX_NAME_LENGTH = 40
DEFAULT_REDIS_IMAGE = "redis:7.2"

#: Five cron fields (or an @-macro); croniter checks the values at reconcile time.
CRON_PATTERN = (
    r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)"
    r"|([0-9A-Za-z*/,?-]+\s+){4}[0-9A-Za-z*/,?-]+)$"
)
MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
IMAGE_PATTERN = r"^[a-z0-9][a-z0-9._/:@-]*$"
SETTING_KEY_PATTERN = r"^[a-z][a-z0-9_]*$"

Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ResourceRequirements(_Model):
    """Requests and limits of a container, merged key by key over the operator's defaults
    (docs/operator.md, "Resources"): set only what differs, e.g. `limits: {memory: 2Gi}`."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class SecretKeyRef(_Model):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class SpiderSpec(_Model):
    """Exactly one of `rules` (a declarative spider, no custom image) or `module` (`pkg.mod:Class`)."""

    rules: dict[str, Any] | None = Field(
        default=None, description="Declarative spider (the YAML/JSON spider format of kubecrawl)."
    )
    module: str | None = Field(
        default=None,
        pattern=MODULE_PATTERN,
        description="Python spider class `package.module:Class`, importable in spec.image.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SpiderSpec:
        if (self.rules is None) == (self.module is None):
            raise ValueError("set exactly one of spider.rules and spider.module")
        return self


class Politeness(_Model):
    concurrency: int = Field(default=32, ge=1, le=1024, description="Concurrent requests per slave.")
    per_host: int = Field(default=8, ge=1, le=256, description="Concurrent requests per host.")
    delay_seconds: float = Field(default=0, ge=0, le=3600, description="Delay between requests to one host.")
    obey_robots: bool = True


class Dedup(_Model):
    requests: Literal["set", "bloom"] = "set"
    item_key: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="Fields of the item content fingerprint. Unset: the spider's own item_key, else no content "
        "dedup (every item is stored).",
    )


class RedisSpec(_Model):
    """The crawl's Redis: a StatefulSet owned by the crawl, or an external one when `url` is set."""

    url: str | None = Field(default=None, pattern=r"^rediss?://", description="External Redis; no Redis is deployed.")
    password_secret_ref: SecretKeyRef | None = Field(default=None, description="Password of the external Redis.")
    storage: str = Field(default="1Gi", pattern=QUANTITY_PATTERN, description="PVC size of the crawl's Redis.")
    storage_class_name: str | None = None
    image: str = Field(default=DEFAULT_REDIS_IMAGE, pattern=IMAGE_PATTERN)
    resources: ResourceRequirements | None = Field(
        default=None,
        description="Redis container resources over the operator's defaults; maxmemory is 3/4 of limits.memory.",
    )

    @model_validator(mode="after")
    def _password_needs_url(self) -> RedisSpec:
        if self.password_secret_ref is not None and self.url is None:
            raise ValueError("redis.passwordSecretRef needs redis.url")
        return self


class CrawlSpec(_Model):
    """What a user asks for: a spider, how many slaves, how often, how politely."""

    spider: SpiderSpec
    replicas: int = Field(default=1, ge=0, le=1000, description="Slave workers (the scale subresource).")
    image: str | None = Field(
        default=None, pattern=IMAGE_PATTERN, description="Worker image; the operator's default when unset."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    schedule: str | None = Field(default=None, pattern=CRON_PATTERN, description="Cron schedule of incremental rounds.")
    time_zone: str | None = Field(default=None, description="IANA time zone of the schedule.")
    suspend: bool = Field(default=False, description="Slaves to 0 and the schedule paused; resume continues.")
    scale_to_zero: bool = Field(
        default=True, description="Scale slaves to 0 when a round is complete (Idle/Completed)."
    )
    politeness: Politeness = Field(default_factory=Politeness)
    dedup: Dedup = Field(default_factory=Dedup)
    redis: RedisSpec = Field(default_factory=RedisSpec)
    resources: ResourceRequirements | None = Field(
        default=None,
        description="Slave container resources over the operator's defaults (also the master's, unless masterResources).",
    )
    master_resources: ResourceRequirements | None = Field(
        default=None, description="Seed and round Job (master) container resources over the operator's defaults."
    )
    ssrf_allow: list[str] = Field(default_factory=list, description="Hosts/CIDRs exempt from the SSRF guard.")
    settings: dict[Annotated[str, Field(pattern=SETTING_KEY_PATTERN)], str] = Field(
        default_factory=dict, description="Extra worker settings, passed as KUBECRAWL_<KEY> environment."
    )
    master_deadline_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 86400,
        description="activeDeadlineSeconds of the seed and round Jobs: a hung master is stopped, so it cannot block later rounds.",
    )
    termination_grace_period_seconds: int = Field(
        default=60, ge=5, le=3600, description="Time a slave gets to hand back in-flight work."
    )

    @property
    def is_external_redis(self) -> bool:
        return self.redis.url is not None


def parse_spec(spec: dict[str, Any]) -> CrawlSpec:
    """Validate a Crawl's `.spec` (raises pydantic.ValidationError with a field path)."""
    return CrawlSpec.model_validate(spec)
