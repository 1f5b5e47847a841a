"""One typed settings object, with every default in one place.

Precedence (highest first): CLI flags and ``-s KEY=VALUE`` > environment ``KUBECRAWL_<KEY>`` >
settings file (YAML) > the spider's ``custom_settings`` > the defaults below. Keys are
case-insensitive. Invalid values fail at start-up with a :class:`ConfigurationError` naming the key.
Scrapy's names for the same settings (``CONCURRENT_REQUESTS``...) are accepted everywhere
(:data:`SCRAPY_ALIASES`); every unknown key is reported at once, with the closest known name.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ._version import __version__
from .errors import ConfigurationError
from .scrapy_setting_names import SCRAPY_SETTING_NAMES

ENV_PREFIX = "KUBECRAWL_"
log = logging.getLogger(__name__)


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
    output: list[str] = []
    """Feeds that stored items are appended to (-o, repeatable): FILE (format by extension: .jsonl .json .csv .xml), FILE:FORMAT, - (stdout) or postgresql://; templates %(name)s %(time)s %(round)s."""
    overwrite_output: list[str] = []
    """Feeds as -o that are overwritten at the start of the run (-O, repeatable)."""
    feeds: dict[str, dict[str, Any] | None] = {}
    """Feeds as Scrapy's FEEDS: URI -> options format, overwrite, fields (list), encoding (default utf-8), table (postgresql)."""
    feed_claim_idle: float = Field(30.0, gt=0, le=86_400)
    """Slaves: seconds an item another slave took from the stream stays unacknowledged before this one delivers it (a killed slave's batch)."""
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
    bloom_capacity: int = Field(10_000_000, ge=1000, le=10_000_000_000)
    """Bloom filter: expected number of distinct requests."""
    bloom_error_rate: float = Field(0.001, gt=0, lt=0.5)
    """Bloom filter: false-positive rate at capacity (a false positive drops a new URL)."""
    lease_seconds: float = Field(300, ge=1, le=86_400)
    """How long a popped request stays leased before another worker may take it (1 s to 1 day)."""
    pop_batch: int = Field(32, ge=1, le=1000)
    """Requests popped (and outcomes committed) per store round trip; a worker buffers at most min(pop_batch, concurrency) leases beyond those it is fetching."""
    exit_when_idle: bool = False
    """Slave: exit 0 once the round is complete (seeded, queue empty, nothing in flight)."""
    health_port: int | None = Field(None, ge=0, le=65535)
    """Serve /healthz, /readyz and /metrics on this port (slaves in Kubernetes default to 8080; elsewhere off)."""
    liveness_commit_timeout: float = Field(300.0, ge=1.0, le=86_400.0)
    """/healthz answers 503 when the process has finished pages waiting to be committed and has not committed for this many seconds (the store wedged it; Kubernetes restarts the pod, its leases go back to the queue)."""

    # politeness and downloading
    concurrency: int = Field(32, ge=1, le=10_000)
    """Concurrent requests in this process."""
    concurrency_per_host: int = Field(8, ge=1, le=10_000)
    """Concurrent requests to one download slot (host), for the whole crawl: every worker together."""
    download_delay: float = Field(0.0, ge=0, le=3600)
    """Seconds between the starts of two requests to one download slot, for the whole crawl (randomised 0.5x-1.5x)."""
    slot_key: Literal["host", "domain"] = "host"
    """What a download slot is: the URL's hostname, or its registered domain (the bundled Public Suffix List; never fetched)."""
    download_timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds before a request times out (connect, read, each; at most 1 h)."""
    download_deadline: float = Field(180.0, gt=0, le=86_400)
    """Seconds one download may take in all (connect, headers, body, retries), counted as deadline and not retried; master/slave: at most half of lease_seconds, so a lease cannot expire during a download."""
    max_retries: int = Field(3, ge=0, le=100)
    """Retries of network errors, timeouts and retry_http_codes, with exponential backoff."""
    retry_backoff: float = Field(0.5, ge=0, le=3600)
    """Base of the exponential retry backoff, in seconds."""
    retry_max_wait: float = Field(60.0, ge=0, le=86_400)
    """Upper bound of one retry wait, including a server's Retry-After."""
    retry_http_codes: list[int] = [500, 502, 503, 504, 522, 524, 408, 429]
    """HTTP statuses that are retried (429 honours Retry-After)."""
    max_redirects: int = Field(10, ge=0, le=100)
    """Redirect hops allowed from one request."""
    max_body_size: int = Field(10 * 1024 * 1024, ge=1024, le=1 << 30)
    """Bodies larger than this many bytes are refused (counted as too_large)."""
    obey_robots: bool = True
    """Fetch and obey robots.txt of each origin."""
    robots_refresh: float = Field(86_400.0, ge=1, le=365 * 86_400)
    """Seconds a robots.txt is used before it is fetched again (one fetch per origin per crawl, shared through the store by every worker; an unavailable one is retried after retry_backoff)."""
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
    max_requests_per_page: int = Field(100_000, ge=1, le=100_000_000)
    """Requests one callback may yield (a page's links); the rest are dropped, counted as requests_capped and logged. On the way they go to the store in batches of 2,000, so memory stays bounded."""
    max_pages: int | None = Field(None, ge=1)
    """Stop gracefully after exactly this many pages (this process: never more are in flight at once)."""
    depth_limit: int = Field(0, ge=0)
    """Drop requests more than this many links away from a start request (0: no limit; counted as depth_limited)."""
    depth_priority: int = 0
    """With depth tracked: a request's priority is lowered by depth x this (positive: breadth-first first)."""
    max_items: int | None = Field(None, ge=1)
    """Stop gracefully once this many items came out of the pipelines (this process; Scrapy's CLOSESPIDER_ITEMCOUNT)."""
    max_seconds: float | None = Field(None, gt=0)
    """Stop gracefully after this many seconds of crawling (this process, per round; CLOSESPIDER_TIMEOUT)."""
    max_errors: int | None = Field(None, ge=1)
    """Stop gracefully once this many errors were counted (this process; CLOSESPIDER_ERRORCOUNT)."""
    meta_refresh: bool | None = None
    """Follow <meta http-equiv=refresh> redirects (first 4096 bytes, delay below meta_refresh_max_delay); unset: on for kubecrawl.scrapy spiders (Scrapy's default), off for kubecrawl spiders (it costs a scan of every page)."""
    meta_refresh_max_delay: float = Field(100.0, ge=0)
    """A meta refresh with a longer delay is not followed (Scrapy's METAREFRESH_MAXDELAY)."""
    cookies: bool = True
    """Remember Set-Cookie per jar (meta['cookiejar']; one default jar per process) and send the cookies back."""
    cookies_per_domain: int = Field(50, ge=1, le=10_000)
    """Cookies one jar keeps for one domain (RFC 6265: at least 50); more are refused and counted cookies_refused."""
    cookies_total: int = Field(3000, ge=1, le=1_000_000)
    """Cookies one jar keeps in all (RFC 6265: at least 3000); more are refused and counted cookies_refused."""
    shared_cookies: bool = False
    """master/slave: keep every cookie jar in Redis (kc:{crawl}:cookies:<jar>), so a login made by one slave serves every slave; role none: no effect (one process shares its jars already)."""
    shared_cookies_refresh: float = Field(1.0, ge=0, le=3600)
    """shared_cookies: seconds a slave's copy of a shared jar is used before it is read again (one round trip per jar; 0: before every request)."""
    downloader_middlewares: dict[str, int | None] = {}
    """Downloader middlewares {path: order} (Scrapy's DOWNLOADER_MIDDLEWARES): process_request in rising order, process_response/process_exception falling; None disables."""
    spider_middlewares: dict[str, int | None] = {}
    """Spider middlewares {path: order} (Scrapy's SPIDER_MIDDLEWARES): process_spider_input rising, process_spider_output/process_start falling; None disables."""
    autothrottle: bool = False
    """Adapt each slot's delay to its latency, as Scrapy's AutoThrottle (AUTOTHROTTLE_ENABLED)."""
    autothrottle_start_delay: float = Field(5.0, ge=0)
    """AutoThrottle: the first delay of a slot, in seconds."""
    autothrottle_max_delay: float = Field(60.0, ge=0)
    """AutoThrottle: the largest delay, in seconds."""
    autothrottle_target_concurrency: float = Field(1.0, gt=0)
    """AutoThrottle: requests in parallel per slot it aims at (the delay tends to latency / this)."""
    base_url: str | None = Field(None, pattern=r"^https?://")  # overrides a declarative spider's base_url
    """Overrides a declarative spider's base_url (point a spider at a mirror or test server)."""

    # items
    item_pipelines: list[str] = []
    """Item pipeline classes (pkg.module.Class), run in order before items are stored; Scrapy's {path: order} dict works too."""
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

    # development (Scrapy projects)
    http_cache: bool = False
    """Keep HTTP responses in a filesystem cache and answer repeated requests from it, robots.txt included (for development: nothing expires it by default)."""
    http_cache_dir: Path = Path("httpcache")
    """Directory of the HTTP cache; a relative one is under .kubecrawl/ next to scrapy.cfg inside a Scrapy project, else under ./.kubecrawl/."""
    http_cache_expiration: float = Field(0, ge=0)
    """Seconds a cached response is used for; 0: forever."""
    http_cache_ignore_http_codes: list[int] = []
    """HTTP statuses never stored in the HTTP cache (comma list)."""

    # logging / UI
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    log_file: Path | None = None
    """Write the log to this file (appended) instead of standard error."""
    log_format: Literal["auto", "text", "json"] = "auto"
    """auto (text on a terminal, JSON lines otherwise), text or json."""
    progress: Literal["auto", "on", "off"] = "auto"
    """Live progress display: auto (on a terminal), on or off."""

    @field_validator(
        "retry_http_codes", "item_key", "ssrf_allow", "item_pipelines", "http_cache_ignore_http_codes", mode="before"
    )
    @classmethod
    def _split_commas(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("output", "overwrite_output", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if isinstance(v, str | Path):
            return [str(v)]
        if isinstance(v, list | tuple):
            return [str(x) for x in v]
        return v

    @field_validator("item_pipelines", mode="before")
    @classmethod
    def _ordered_pipelines(cls, v: Any) -> Any:
        """Scrapy's ``ITEM_PIPELINES = {"path": 300}``: sorted by order; ``None`` disables an entry."""
        if isinstance(v, Mapping):
            enabled = [(order, i, path) for i, (path, order) in enumerate(v.items()) if order is not None]
            return [path for _, _, path in sorted(enabled)]
        return v

    @field_validator("feeds", mode="before")
    @classmethod
    def _feed_uris(cls, v: Any) -> Any:
        """Scrapy's ``FEEDS`` may be keyed by ``pathlib.Path``."""
        if isinstance(v, Mapping):
            return {str(k) if isinstance(k, Path) else k: o for k, o in v.items()}
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

    @model_validator(mode="after")
    def _shared_needs_cookies(self) -> Settings:
        if self.shared_cookies and not self.cookies:
            raise ValueError("shared_cookies needs cookies (COOKIES_ENABLED): there are no jars to share")
        return self

    @model_validator(mode="after")
    def _valid_feeds(self) -> Settings:
        from .feeds.spec import feeds_from_settings

        feeds_from_settings(self.output, self.overwrite_output, self.feeds)  # raises ConfigurationError
        return self

    def feed_specs(self) -> list[Any]:
        """The run's feeds (:class:`~kubecrawl.feeds.spec.FeedSpec`), checked."""
        from .feeds.spec import feeds_from_settings

        return feeds_from_settings(self.output, self.overwrite_output, self.feeds)

    @property
    def redis_password_value(self) -> str | None:
        return self.redis_password.get_secret_value() if self.redis_password else None

    # -- Scrapy's settings API: spider.settings.get("CONCURRENT_REQUESTS"), getint, getbool... --------
    _scrapy_extra: dict[str, Any] = PrivateAttr(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """A setting by its kubecrawl or Scrapy name (any case); ``default`` if it is neither."""
        key = name.lower().replace("-", "_")
        if key in _FIELDS:
            return getattr(self, key)
        alias = SCRAPY_ALIASES.get(name.upper())
        if alias is not None:
            return getattr(self, alias[0])
        return self._scrapy_extra.get(name.upper(), default)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name, _MISSING) is not _MISSING

    def getbool(self, name: str, default: bool = False) -> bool:
        value = self.get(name, default)
        if value in (True, 1, "1", "True", "true"):
            return True
        if value in (False, 0, "0", "False", "false", None, ""):
            return False
        raise ValueError(f"setting {name!r}: {value!r} is not a boolean")

    def getint(self, name: str, default: int = 0) -> int:
        value = self.get(name, default)
        return int(value) if value is not None else default

    def getfloat(self, name: str, default: float = 0.0) -> float:
        value = self.get(name, default)
        return float(value) if value is not None else default

    def getlist(self, name: str, default: list[Any] | None = None) -> list[Any]:
        value = self.get(name, default or [])
        if isinstance(value, str):
            return value.split(",")
        return list(value) if value is not None else []

    def getdict(self, name: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
        value = self.get(name, default or {})
        if isinstance(value, str):
            import json

            value = json.loads(value)
        return dict(value) if value is not None else {}


_FIELDS = set(Settings.model_fields)
_MISSING = object()


def _zero_is_none(v: Any) -> Any:
    return None if v in (0, "0") else v


#: Scrapy setting name -> (kubecrawl setting, value conversion). docs/scrapy.md has the table.
SCRAPY_ALIASES: dict[str, tuple[str, Any]] = {
    "ROBOTSTXT_OBEY": ("obey_robots", None),
    "CONCURRENT_REQUESTS": ("concurrency", None),
    "CONCURRENT_REQUESTS_PER_DOMAIN": ("concurrency_per_host", None),
    "DOWNLOAD_DELAY": ("download_delay", None),
    "DOWNLOAD_TIMEOUT": ("download_timeout", None),
    "DOWNLOAD_MAXSIZE": ("max_body_size", None),
    "USER_AGENT": ("user_agent", None),
    "DEFAULT_REQUEST_HEADERS": ("default_headers", None),
    "RETRY_TIMES": ("max_retries", None),
    "RETRY_HTTP_CODES": ("retry_http_codes", None),
    "REDIRECT_MAX_TIMES": ("max_redirects", None),
    "DEPTH_LIMIT": ("depth_limit", None),
    "DEPTH_PRIORITY": ("depth_priority", None),
    "ITEM_PIPELINES": ("item_pipelines", None),
    "CLOSESPIDER_PAGECOUNT": ("max_pages", _zero_is_none),
    "CLOSESPIDER_ITEMCOUNT": ("max_items", _zero_is_none),
    "CLOSESPIDER_TIMEOUT": ("max_seconds", _zero_is_none),
    "CLOSESPIDER_ERRORCOUNT": ("max_errors", _zero_is_none),
    "METAREFRESH_ENABLED": ("meta_refresh", None),
    "METAREFRESH_MAXDELAY": ("meta_refresh_max_delay", None),
    "COOKIES_ENABLED": ("cookies", None),
    "DOWNLOADER_MIDDLEWARES": ("downloader_middlewares", None),
    "SPIDER_MIDDLEWARES": ("spider_middlewares", None),
    "AUTOTHROTTLE_ENABLED": ("autothrottle", None),
    "AUTOTHROTTLE_START_DELAY": ("autothrottle_start_delay", None),
    "AUTOTHROTTLE_MAX_DELAY": ("autothrottle_max_delay", None),
    "AUTOTHROTTLE_TARGET_CONCURRENCY": ("autothrottle_target_concurrency", None),
}

# Scrapy projects, the HTTP cache and logging (docs/scrapy.md)
SCRAPY_ALIASES.update(
    {
        "HTTPCACHE_ENABLED": ("http_cache", None),
        "HTTPCACHE_DIR": ("http_cache_dir", None),
        "HTTPCACHE_EXPIRATION_SECS": ("http_cache_expiration", None),
        "HTTPCACHE_IGNORE_HTTP_CODES": ("http_cache_ignore_http_codes", None),
    }
)

#: what a Scrapy project's loader reads itself (kubecrawl/project.py): kept for ``settings.get()``,
#: and not "without effect" inside a project
SCRAPY_PROJECT_KEYS = frozenset({"BOT_NAME", "SPIDER_MODULES", "NEWSPIDER_MODULE"})
#: Scrapy settings accepted only with their empty default (a project template has ``ADDONS = {}``)
SCRAPY_EMPTY_ONLY = {"ADDONS": "Scrapy add-ons are not supported"}

#: Scrapy project settings with no kubecrawl meaning: accepted (a Scrapy settings.py has them), kept
#: for ``settings.get()``, and named once in the log as having no effect
SCRAPY_INERT = frozenset(
    {
        "BOT_NAME",
        "SPIDER_MODULES",
        "NEWSPIDER_MODULE",
        "REQUEST_FINGERPRINTER_IMPLEMENTATION",
        "TWISTED_REACTOR",
        "FEED_EXPORT_ENCODING",
        "AUTOTHROTTLE_DEBUG",
        "COOKIES_DEBUG",
    }
)

_KNOWN_NAMES = sorted(
    _FIELDS | {a.lower() for a in SCRAPY_ALIASES} | {a.lower() for a in SCRAPY_INERT | set(SCRAPY_EMPTY_ONLY)}
)


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key.lower().replace("-", "_"), _KNOWN_NAMES, n=1, cutoff=0.6)
    if not close:
        return ""
    name = close[0]
    if name.upper() in SCRAPY_ALIASES:
        return f"; did you mean {name.upper()!r} (kubecrawl: {SCRAPY_ALIASES[name.upper()][0]})?"
    return f"; did you mean {name.upper() if name.upper() in SCRAPY_INERT else name!r}?"


class _Collected:
    """Unknown keys of every source, reported together; inert Scrapy keys kept aside."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.inert: dict[str, Any] = {}
        self.project: dict[str, dict[str, Any]] = {}  # a Scrapy project's own settings by source, for its code

    def raise_if_any(self) -> None:
        if self.unknown:
            raise ConfigurationError(
                f"{len(self.unknown)} unknown setting(s): " + "; ".join(self.unknown) + " (see docs/settings.md)"
            )


_PROJECT_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def _is_project_setting(key: str) -> bool:
    """A Scrapy project's own setting (``MONGO_URI``, ``PROXY_POOL``: upper case, as Scrapy's), which its
    pipelines and middlewares read through ``crawler.settings``: not one of Scrapy's own names (those
    are supported or refused) and not a near miss of a known name (``CONCURRENT_REQUESTZ`` is a typo)."""
    if not _PROJECT_NAME.match(key) or key in SCRAPY_SETTING_NAMES:
        return False
    return not difflib.get_close_matches(key.lower(), _KNOWN_NAMES, n=1, cutoff=0.85)


def _normalise(
    source: str, mapping: Mapping[str, Any], found: _Collected | None = None, *, project_names: bool = False
) -> dict[str, Any]:
    """Known names to fields; ``project_names``: the source may hold a Scrapy project's own settings
    (settings.py, ``custom_settings``, ``-s``), kept for ``settings.get()`` instead of refused."""
    collect = found or _Collected()
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        k = key.lower().replace("-", "_")
        if k in _FIELDS:
            out[k] = value
            continue
        upper = key.upper().replace("-", "_")
        alias = SCRAPY_ALIASES.get(upper)
        if alias is not None:
            field, convert = alias
            out[field] = convert(value) if convert is not None else value
        elif upper in SCRAPY_INERT:
            collect.inert[upper] = value
        elif upper in SCRAPY_EMPTY_ONLY:
            if value:
                collect.unknown.append(f"setting {key!r} (from {source}): {SCRAPY_EMPTY_ONLY[upper]}")
            else:
                collect.inert[upper] = value
        elif project_names and _is_project_setting(key):
            collect.project.setdefault(source, {})[key] = value
        elif upper in SCRAPY_SETTING_NAMES:
            collect.unknown.append(
                f"Scrapy setting {key!r} (from {source}) is not supported by kubecrawl{_suggest(key)}"
            )
        else:
            collect.unknown.append(f"unknown setting {key!r} (from {source}){_suggest(key)}")
    if found is None:
        collect.raise_if_any()
    return out


#: ``KUBECRAWL_*`` variables that are not settings, so an unknown one can be an error: read elsewhere in
#: the worker (``WORKER_ID``), by the operator (``OPERATOR_*``, ``WORKER_IMAGE``), by the build and test
#: tooling (``E2E_*``, ``IMAGE_*``, ...), and the service links Kubernetes injects for a Service named
#: ``kubecrawl`` (``KUBECRAWL_SERVICE_HOST``, ``KUBECRAWL_PORT_8080_TCP``...; crawl pods turn them off).
NOT_SETTINGS = frozenset({"WORKER_ID", "WORKER_IMAGE", "HELM", "SCRAPY_PYTHON", "PORT"})
NOT_SETTINGS_PREFIXES = (
    "OPERATOR_",
    "E2E_",
    "TEST_",
    "IMAGE_",
    "IMAGES_",
    "BUILD_",
    "SETUP_",
    "SERVICE_",
    "PORT_",
)


def is_setting_variable(name: str) -> bool:
    """Whether an environment variable is read as a setting (``KUBECRAWL_<KEY>``, not in :data:`NOT_SETTINGS`)."""
    if not name.startswith(ENV_PREFIX):
        return False
    rest = name[len(ENV_PREFIX) :]
    return rest not in NOT_SETTINGS and not rest.startswith(NOT_SETTINGS_PREFIXES)


def env_settings(environ: Mapping[str, str] | None = None, found: _Collected | None = None) -> dict[str, Any]:
    """Settings from ``KUBECRAWL_<KEY>`` variables; an unknown key is an error (exit 2) like in any
    other source, so a misspelt variable is never silently ignored."""
    environ = os.environ if environ is None else environ
    values = {k[len(ENV_PREFIX) :]: v for k, v in environ.items() if is_setting_variable(k) and v != ""}
    return _normalise("environment, KUBECRAWL_<KEY>", values, found)


def file_settings(path: Path, found: _Collected | None = None) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read settings file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"settings file {path} must hold a mapping of settings")
    return _normalise(f"settings file {path}", data, found)


def parse_kv(pairs: list[str]) -> dict[str, Any]:
    """``["CONCURRENCY=8", ...]`` → ``{"CONCURRENCY": "8"}``; keys and values are checked by
    :func:`build_settings`, so unknown keys of every source are reported together."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"-s expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = _yaml_scalar(value)
    return out


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
    project_settings: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge every source by precedence and validate the result. ``project_settings`` (a Scrapy
    project's settings module, kubecrawl/project.py) rank lowest, below ``custom_settings``, as in Scrapy."""
    found = _Collected()
    project = _normalise("project settings.py", project_settings or {}, found, project_names=True)
    cli_norm = _normalise(
        "command line", {k: v for k, v in (cli or {}).items() if v is not None}, found, project_names=True
    )
    env = env_settings(environ, found)
    file_path = cli_norm.get("settings_file") or env.get("settings_file")
    from_file = file_settings(Path(file_path), found) if file_path else {}
    merged: dict[str, Any] = {}
    for layer in (
        project,
        _normalise("spider custom_settings", spider_settings or {}, found, project_names=True),
        from_file,
        env,
        cli_norm,
    ):
        merged.update(layer)
    found.raise_if_any()
    inert = set(found.inert) - (SCRAPY_PROJECT_KEYS if project_settings is not None else set())
    if inert:
        log.info("Scrapy settings with no effect in kubecrawl: %s", ", ".join(sorted(inert)))
    own: dict[str, Any] = {}
    for source in ("project settings.py", "spider custom_settings", "command line"):  # lowest rank first
        own.update(found.project.get(source, {}))
    if own:
        log.info(
            "%d project setting(s) that kubecrawl does not use itself, for your code (crawler.settings): %s",
            len(own),
            ", ".join(sorted(own)),
        )
    try:
        settings = Settings.model_validate(merged)
        settings._scrapy_extra.update(found.inert)
        settings._scrapy_extra.update(own)
        return settings
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
