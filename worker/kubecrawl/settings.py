"""One typed settings object, with every default in one place.

Precedence (highest first): CLI flags and ``-s KEY=VALUE`` > environment ``KUBECRAWL_<KEY>`` >
settings file (YAML) > the spider's ``custom_settings`` > the defaults below. Keys are
case-insensitive. Invalid values fail at start-up with a :class:`ConfigurationError` naming the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ._version import __version__
from .errors import ConfigurationError

ENV_PREFIX = "KUBECRAWL_"


class Settings(BaseModel):
    """Every setting kubecrawl reads. See docs/contracts.md §2 and docs/settings.md."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)

    # what to run
    role: Literal["none", "master", "slave"] = "none"
    """none: one process, local store; master: seed the start requests into Redis and exit; slave: crawl from Redis."""
    spider: str | None = None
    """pkg.module:Class, path/to/file.py[:Class], or a declarative spider .yaml/.json."""
    crawl: str | None = Field(None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    """Crawl name: the Redis key prefix kc:{crawl}: (default: the spider's name)."""
    output: Path | None = None
    """Append stored items to this JSON-lines file (role none)."""
    state_dir: Path | None = None
    """Persist queue, fingerprints and items here (SQLite, WAL) so an interrupted crawl resumes."""
    settings_file: Path | None = None
    """A YAML file of settings (lower precedence than the environment)."""

    # shared store
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis URL for master/slave (redis://host:port/db or rediss://)."""
    redis_password: SecretStr | None = None
    """Redis password; kept out of URLs, logs and command lines."""
    dedup: Literal["set", "bloom"] = "set"
    """Request fingerprint store in Redis: set (exact, 64-bit fingerprints in intset buckets) or bloom."""
    bloom_capacity: int = Field(10_000_000, ge=1000)
    """Bloom filter: expected number of distinct requests."""
    bloom_error_rate: float = Field(0.001, gt=0, lt=0.5)
    """Bloom filter: false-positive rate at capacity (a false positive drops a new URL)."""
    lease_seconds: float = Field(300, gt=0)
    """How long a popped request stays leased before another worker may take it."""
    pop_batch: int = Field(32, ge=1, le=1000)
    """Requests popped (and outcomes committed) per store round trip."""
    exit_when_idle: bool = False
    """Slave: exit 0 once the round is complete (seeded, queue empty, nothing in flight)."""
    health_port: int | None = Field(None, ge=0, le=65535)
    """Serve /healthz, /readyz and /metrics on this port (slaves in Kubernetes default to 8080; elsewhere off)."""

    # politeness and downloading
    concurrency: int = Field(32, ge=1, le=10_000)
    """Concurrent requests in this process."""
    concurrency_per_host: int = Field(8, ge=1, le=10_000)
    """Concurrent requests to one download slot (host), for the whole crawl: every worker together."""
    download_delay: float = Field(0.0, ge=0)
    """Seconds between the starts of two requests to one download slot, for the whole crawl (randomised 0.5x-1.5x)."""
    slot_key: Literal["host", "domain"] = "host"
    """What a download slot is: the URL's hostname, or its registered domain (the bundled Public Suffix List; never fetched)."""
    download_timeout: float = Field(30.0, gt=0)
    """Seconds before a request times out (connect, read, each)."""
    max_retries: int = Field(3, ge=0, le=100)
    """Retries of network errors, timeouts and retry_http_codes, with exponential backoff."""
    retry_backoff: float = Field(0.5, ge=0)
    """Base of the exponential retry backoff, in seconds."""
    retry_max_wait: float = Field(60.0, ge=0)
    """Upper bound of one retry wait, including a server's Retry-After."""
    retry_http_codes: list[int] = [500, 502, 503, 504, 522, 524, 408, 429]
    """HTTP statuses that are retried (429 honours Retry-After)."""
    max_redirects: int = Field(10, ge=0, le=100)
    """Redirect hops allowed from one request."""
    max_body_size: int = Field(10 * 1024 * 1024, ge=1024)
    """Bodies larger than this many bytes are refused (counted as too_large)."""
    obey_robots: bool = True
    """Fetch and obey robots.txt of each origin."""
    user_agent: str = f"kubecrawl/{__version__}"
    """User-Agent header (and the robots.txt user agent)."""
    default_headers: dict[str, str] = {
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Accept-Language": "en,zh;q=0.8",
    }
    """Headers sent with every request."""
    proxy: str | None = None
    """HTTP(S) proxy URL for every request."""
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    """aiohttp (fast, default) or httpx's own transport; both behind the httpx API."""
    verify_tls: bool = True
    """Verify TLS certificates."""
    ssrf_guard: Literal["auto", "on", "off"] = "auto"
    """Refuse loopback/private/link-local/metadata addresses: auto = on inside Kubernetes."""
    ssrf_allow: list[str] = []
    """Hosts or CIDRs exempt from the SSRF guard (comma list)."""
    max_pages: int | None = Field(None, ge=1)
    """Stop gracefully after this many pages (this process)."""
    base_url: str | None = Field(None, pattern=r"^https?://")  # overrides a declarative spider's base_url
    """Overrides a declarative spider's base_url (point a spider at a mirror or test server)."""

    # items
    item_pipelines: list[str] = []
    """Item pipeline classes (pkg.module.Class), run in order before items are stored."""
    item_key: list[str] = []
    """Item fields whose values form the content fingerprint (comma list); empty (the default): no content dedup."""
    item_dedup: Literal["skip", "update", "off"] = "skip"
    """With an item_key: skip never stores an item whose key was stored; update stores it again when its content changed; off."""
    fingerprint_ttl: float | None = Field(None, gt=0)
    """Seconds after which a seen request may be fetched again (re-visit age)."""

    # incremental rounds
    every: float | None = Field(None, gt=0)
    """Run a new round (the start requests again) every N seconds."""
    cron: str | None = None
    """Run a new round on this cron schedule."""
    max_rounds: int | None = Field(None, ge=1)
    """Stop after this many rounds."""

    # logging / UI
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    log_format: Literal["auto", "text", "json"] = "auto"
    """auto (text on a terminal, JSON lines otherwise), text or json."""
    progress: Literal["auto", "on", "off"] = "auto"
    """Live progress display: auto (on a terminal), on or off."""

    @field_validator("retry_http_codes", "item_key", "ssrf_allow", "item_pipelines", mode="before")
    @classmethod
    def _split_commas(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, v: str | None) -> str | None:
        if v is not None:
            from croniter import croniter

            if not croniter.is_valid(v):
                raise ValueError(f"{v!r} is not a valid cron expression")
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @property
    def redis_password_value(self) -> str | None:
        return self.redis_password.get_secret_value() if self.redis_password else None


_FIELDS = set(Settings.model_fields)


def _normalise(source: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        k = key.lower().replace("-", "_")
        if k not in _FIELDS:
            raise ConfigurationError(f"unknown setting {key!r} (from {source}); see docs/settings.md for the list")
        out[k] = value
    return out


def env_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    found = {
        k[len(ENV_PREFIX) :]: v
        for k, v in environ.items()
        if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() in _FIELDS and v != ""
    }
    return _normalise("environment", found)


def file_settings(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read settings file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"settings file {path} must hold a mapping of settings")
    return _normalise(f"settings file {path}", data)


def parse_kv(pairs: list[str]) -> dict[str, Any]:
    """``["CONCURRENCY=8", ...]`` → ``{"concurrency": "8"}`` (values are validated later)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"-s expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = _yaml_scalar(value)
    return _normalise("-s", out)


def _yaml_scalar(value: str) -> Any:
    """Let ``-s default_headers='{"X": "1"}'`` and ``-s item_key='[a, b]'`` give structured values."""
    if value[:1] in "[{":
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def build_settings(
    *,
    cli: Mapping[str, Any] | None = None,
    spider_settings: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every source by precedence and validate the result."""
    cli_norm = _normalise("command line", {k: v for k, v in (cli or {}).items() if v is not None})
    env = env_settings(environ)
    file_path = cli_norm.get("settings_file") or env.get("settings_file")
    from_file = file_settings(Path(file_path)) if file_path else {}
    merged: dict[str, Any] = {}
    for layer in (_normalise("spider custom_settings", spider_settings or {}), from_file, env, cli_norm):
        merged.update(layer)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
