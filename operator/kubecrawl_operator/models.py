"""The Crawl resource's spec as pydantic models: the one source of truth for crds/crawl.yaml.

Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.
`scripts/gen_crd.py` turns these models into the CRD's structural OpenAPI schema.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
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
FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.(py|yaml|yml|json)(:[A-Za-z_][A-Za-z0-9_]*)?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
#: Sinks a distributed crawl delivers to from its Redis stream (worker/kubecrawl/feeds).
OUTPUT_URI_PATTERN = r"^(postgresql|postgres|s3)://"

Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ResourceRequirements(_Model):
    """Requests and limits of a container, merged key by key over the operator's defaults
    (docs/operator.md, "Resources"): set only what differs, e.g. `limits: {memory: 2Gi}`."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources the scheduler reserves, e.g. {cpu: 250m, memory: 256Mi}."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources the container may use, e.g. {cpu: '2', memory: 1Gi}."
    )


class SecretKeyRef(_Model):
    """A key of a Secret in the Crawl's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key in the Secret's data.")


class LocalObjectReference(_Model):
    """An object in the Crawl's namespace, by name."""

    name: str = Field(min_length=1, max_length=253, description="Name of the object.")


class Toleration(_Model):
    """core/v1 Toleration."""

    key: str | None = Field(default=None, description="Taint key the toleration matches; unset with Exists: all.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default).")
    value: str | None = Field(default=None, description="Taint value to match with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; unset: all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="With NoExecute: how long the pod stays bound after the taint appears."
    )


class PodSecurityOverrides(_Model):
    """Pod securityContext fields a user may set. The operator always enforces the restricted profile
    (non-root, RuntimeDefault seccomp): a value that would weaken it is ignored and reported in the
    Crawl's `SecurityContextEnforced` condition."""

    run_as_user: int | None = Field(default=None, description="Non-zero uid; 0 is ignored (the pod stays non-root).")
    run_as_group: int | None = Field(default=None, description="Primary gid of the containers' processes.")
    fs_group: int | None = Field(default=None, description="Group that owns the pod's volumes.")
    supplemental_groups: list[int] | None = Field(default=None, description="Extra gids of the containers' processes.")
    run_as_non_root: bool | None = Field(default=None, description="false is ignored: always true.")
    seccomp_profile: dict[str, Any] | None = Field(
        default=None, description="RuntimeDefault or Localhost; Unconfined is ignored."
    )
    se_linux_options: dict[str, Any] | None = Field(
        default=None, description="core/v1 SELinuxOptions, checked by the API server."
    )
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = Field(
        default=None, description="When the kubelet changes volume ownership to fsGroup: OnRootMismatch or Always."
    )


class PodTemplate(_Model):
    """Placement and metadata of a crawl's pods, merged under the security settings the operator enforces."""

    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra pod labels; the operator's app.kubernetes.io/* selector labels win."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra pod annotations; the operator's kubecrawl.io/* annotations win."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pods must be scheduled on."
    )
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pods tolerate.")
    affinity: dict[str, Any] | None = Field(default=None, description="core/v1 Affinity, checked by the API server.")
    topology_spread_constraints: list[dict[str, Any]] = Field(
        default_factory=list, description="core/v1 TopologySpreadConstraint list, checked by the API server."
    )
    priority_class_name: str | None = Field(default=None, description="PriorityClass of the pods.")
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets for pulling the image from a private registry."
    )
    service_account_name: str | None = Field(
        default=None, description="The pods' ServiceAccount; its token is still not mounted."
    )
    security_context: PodSecurityOverrides | None = None


class ConfigMapItem(_Model):
    """One key of the source ConfigMap and where it is mounted."""

    key: str = Field(min_length=1, max_length=253, description="Key in the ConfigMap's data.")
    path: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[^/.][^\\]*$",
        description="Relative path under /etc/kubecrawl/source.",
    )


class SpiderSource(_Model):
    """Spider code from a ConfigMap (`kubectl create configmap my-spiders --from-file=spiders/`), mounted
    read-only at /etc/kubecrawl/source and put on PYTHONPATH: a pure-Python spider on the stock image."""

    config_map: str = Field(min_length=1, max_length=253, description="Name of the ConfigMap holding the files.")
    items: list[ConfigMapItem] | None = Field(
        default=None,
        description="Key to relative path, to lay out a package (e.g. key spiders.py, path myproj/spiders.py).",
    )


class SpiderSpec(_Model):
    """Exactly one of `rules` (a declarative spider, no custom image), `module` (`pkg.mod:Class`) or
    `file` (a file of `source`)."""

    rules: dict[str, Any] | None = Field(
        default=None, description="Declarative spider (the YAML/JSON spider format of kubecrawl)."
    )
    module: str | None = Field(
        default=None,
        pattern=MODULE_PATTERN,
        description="Python spider class `package.module:Class`, importable in spec.image or from spider.source.",
    )
    file: str | None = Field(
        default=None,
        pattern=FILE_PATTERN,
        description="A spider file of spider.source, relative to it: `books.py`, `books.py:Books` or `spider.yaml`.",
    )
    source: SpiderSource | None = Field(default=None, description="Spider files from a ConfigMap.")
    args: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict, description="Spider arguments (`-a NAME=VALUE`), as Scrapy's."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SpiderSpec:
        if sum(x is not None for x in (self.rules, self.module, self.file)) != 1:
            raise ValueError("set exactly one of spider.rules, spider.module and spider.file")
        if self.file is not None and self.source is None:
            raise ValueError("spider.file names a file of spider.source: set spider.source")
        if self.rules is not None and self.source is not None:
            raise ValueError("spider.source holds Python or spider files: use spider.module or spider.file with it")
        return self


class Politeness(_Model):
    """How hard the slaves crawl: concurrency, per-host limits, delays, robots.txt. Each field reaches the workers only when set: unset, the spider's custom_settings (or the worker's
    default: 32, 8, 0, true) apply."""

    concurrency: int | None = Field(default=None, ge=1, le=1024, description="Concurrent requests per slave.")
    per_host: int | None = Field(default=None, ge=1, le=256, description="Concurrent requests per host.")
    delay_seconds: float | None = Field(default=None, ge=0, le=3600, description="Delay between requests to one host.")
    obey_robots: bool | None = Field(default=None, description="Fetch and obey each host's robots.txt.")


class Dedup(_Model):
    """Duplicate filtering of requests (URL fingerprints) and of items (content fingerprints)."""

    requests: Literal["set", "bloom"] | None = Field(
        default=None,
        description="Request fingerprint store: set (exact) or bloom (less memory, rare false positives skip a "
        "URL); unset: the spider's setting, else set.",
    )
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
    storage_class_name: str | None = Field(
        default=None, description="StorageClass of the Redis PVC; the cluster's default when unset."
    )
    image: str = Field(default=DEFAULT_REDIS_IMAGE, pattern=IMAGE_PATTERN, description="Redis image (7.x).")
    resources: ResourceRequirements | None = Field(
        default=None,
        description="Redis container resources over the operator's defaults; maxmemory is 3/4 of limits.memory.",
    )

    retain_on_delete: bool = Field(
        default=False,
        description="Keep the Redis PVC (queue, fingerprints, items) when the Crawl is deleted; by default it is deleted with it.",
    )
    pod_template: PodTemplate | None = Field(default=None, description="Placement and metadata of the Redis pod.")

    @model_validator(mode="after")
    def _password_needs_url(self) -> RedisSpec:
        if self.password_secret_ref is not None and self.url is None:
            raise ValueError("redis.passwordSecretRef needs redis.url")
        return self


Cidr = Annotated[str, Field(min_length=2, max_length=64, json_schema_extra={"format": "cidr"})]


class NetworkPolicySpec(_Model):
    """The workers' egress NetworkPolicy: a second wall behind the SSRF guard (docs/operator.md)."""

    enabled: bool = Field(
        default=True,
        description="Create the policy: workers reach DNS, their Redis and public addresses only.",
    )
    allow_cidrs: list[Cidr] = Field(
        default_factory=list,
        max_length=64,
        description="Extra destinations (e.g. a private site you crawl, 10.1.2.0/24); IP and CIDR entries of "
        "ssrfAllow are added as well.",
    )
    deny_cidrs: list[Cidr] = Field(
        default_factory=list,
        max_length=64,
        description="Also denied besides the private, loopback, link-local and multicast ranges: the cluster's "
        "own public pod or service ranges, if it has any.",
    )

    @field_validator("allow_cidrs", "deny_cidrs")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the bad entry
        return values


class DisruptionBudgetSpec(_Model):
    """The slaves' PodDisruptionBudget: a node drain evicts a few slaves at a time, not all at once."""

    enabled: bool = Field(default=True, description="Create the PodDisruptionBudget.")
    max_unavailable: Quantity = Field(
        default="25%",
        description="Slaves a voluntary disruption may take at once: a number or a percentage (rounded up, so "
        "one slave can always be evicted).",
    )

    @field_validator("max_unavailable")
    @classmethod
    def _count_or_percent(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not re.fullmatch(r"[0-9]+%", value):
            raise ValueError(f"maxUnavailable {value!r} is neither a number nor a percentage like '25%'")
        if isinstance(value, int) and value < 0:
            raise ValueError("maxUnavailable must not be negative")
        return value


class OutputSink(_Model):
    """One sink the slaves deliver the crawl's items to (docs/feeds.md)."""

    uri: str = Field(
        pattern=OUTPUT_URI_PATTERN,
        max_length=2048,
        description="postgresql://user@host/db or s3://bucket/prefix/...; no password here: use secretRef.",
    )
    format: Literal["jsonl", "json", "csv", "xml"] | None = Field(
        default=None, description="Object format of an s3:// sink (default: by extension, else jsonl)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Feed options as the worker's feeds setting: fields, encoding, table..."
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="A Secret whose keys become the slaves' environment (PGPASSWORD, AWS_ACCESS_KEY_ID...).",
    )


class EnvVar(_Model):
    """core/v1 EnvVar: a value, or valueFrom (secretKeyRef, configMapKeyRef...)."""

    name: str = Field(pattern=ENV_NAME_PATTERN, max_length=253, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        default=None, description="core/v1 EnvVarSource (secretKeyRef, configMapKeyRef...), checked by the API server."
    )


class EnvFromSource(_Model):
    """core/v1 EnvFromSource: every key of a Secret or ConfigMap."""

    prefix: str | None = Field(default=None, description="Prepended to every variable name.")
    secret_ref: dict[str, Any] | None = Field(default=None, description="The Secret (name, optional).")
    config_map_ref: dict[str, Any] | None = Field(default=None, description="The ConfigMap (name, optional).")


class CrawlSpec(_Model):
    """What a user asks for: a spider, how many slaves, how often, how politely."""

    spider: SpiderSpec
    replicas: int = Field(default=1, ge=0, le=1000, description="Slave workers (the scale subresource).")
    image: str | None = Field(
        default=None, pattern=IMAGE_PATTERN, description="Worker image; the operator's default when unset."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="imagePullPolicy of the worker containers; Kubernetes' default when unset."
    )
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
        default_factory=dict,
        description="Worker settings (docs/settings.md), passed as KUBECRAWL_<KEY>; an unknown key makes the Crawl Ready=False.",
    )
    pod_template: PodTemplate | None = Field(
        default=None, description="Placement and metadata of the worker pods (seed Job, slaves, rounds)."
    )
    env: list[EnvVar] = Field(
        default_factory=list, description="Extra environment of the worker containers (e.g. secrets for pipelines)."
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list, description="Secrets/ConfigMaps whose keys become worker environment."
    )
    output: list[OutputSink] = Field(
        default_factory=list, description="Sinks the slaves deliver items to from the crawl's Redis stream."
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
    network_policy: NetworkPolicySpec = Field(
        default_factory=NetworkPolicySpec, description="Egress NetworkPolicy of the seed, round and slave pods."
    )
    disruption_budget: DisruptionBudgetSpec = Field(
        default_factory=DisruptionBudgetSpec, description="PodDisruptionBudget of the slave pods."
    )

    @property
    def is_external_redis(self) -> bool:
        return self.redis.url is not None


def parse_spec(spec: dict[str, Any]) -> CrawlSpec:
    """Validate a Crawl's `.spec` (raises pydantic.ValidationError with a field path)."""
    return CrawlSpec.model_validate(spec)
