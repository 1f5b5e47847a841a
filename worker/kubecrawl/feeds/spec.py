"""What a feed is: a URI (a file, ``-`` for stdout, ``postgresql://`` or ``s3://``), a format and its options.

Feeds come from ``-o``/``-O`` (``FILE``, ``FILE:FORMAT``, a URI) and from the ``feeds`` setting, a
mapping URI → options as Scrapy's ``FEEDS``. Everything is checked at start-up: an unknown scheme or
format is a :class:`~kubecrawl.errors.ConfigurationError` (exit 2), never a local file with a strange
name. URIs are templates: ``%(name)s`` (spider), ``%(time)s`` (UTC, at the start of the run or round),
``%(round)s`` (round number) and ``%(batch)s`` (a file's number with ``batch_item_count``, an S3
object's batch); a template that changes between rounds rotates the feed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError

FORMATS = ("jsonl", "json", "csv", "xml")
#: file extensions that name a format (anything else: jsonl, as ``-o`` always wrote)
EXTENSIONS = {".jsonl": "jsonl", ".jl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".xml": "xml"}
#: URI schemes with a sink; every other ``scheme://`` is refused (docs/feeds.md)
SCHEMES = ("file", "postgresql", "postgres", "s3")
OPTIONS = ("format", "overwrite", "fields", "encoding", "table", "batch_item_count", "endpoint", "region")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_FORMAT_SUFFIX = re.compile(r":([A-Za-z0-9_-]+)$")
_TEMPLATE = re.compile(r"%\((\w+)\)s")
_TEMPLATE_KEYS = ("name", "time", "round", "batch")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One configured feed. ``uri`` may hold ``%(name)s``/``%(time)s``/``%(round)s`` (see :meth:`resolve`)."""

    uri: str
    format: str = "jsonl"
    overwrite: bool = False
    fields: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    table: str | None = None
    #: a new file (``%(batch)s`` in the URI) every N items; an S3 object holds at most N
    batch_item_count: int | None = None
    #: S3: the endpoint URL (S3-compatible servers) and region; else ``AWS_ENDPOINT_URL``/``AWS_REGION``
    endpoint: str | None = None
    region: str | None = None

    @property
    def kind(self) -> str:
        """``file``, ``stdout``, ``postgresql`` or ``s3``."""
        if self.uri == "-":
            return "stdout"
        m = _SCHEME.match(self.uri)
        if m and m.group(1).lower() in ("postgresql", "postgres"):
            return "postgresql"
        if m and m.group(1).lower() == "s3":
            return "s3"
        return "file"

    @property
    def templated(self) -> bool:
        return bool(_TEMPLATE.search(self.uri))

    def resolve(self, name: str, round_no: int, now: float | None = None) -> str:
        """The URI with its template filled in: the spider name, the round and the UTC time (``:`` → ``-``).

        ``%(batch)s`` stays: the sink fills it in per file or object (:func:`fill_batch`)."""
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(time.time() if now is None else now))
        values = {"name": name, "time": stamp, "round": str(round_no), "batch": "%(batch)s"}
        return _TEMPLATE.sub(lambda m: values[m.group(1)], self.uri)

    def uses(self, key: str) -> bool:
        """Whether the URI holds the template ``%(key)s``."""
        return key in _TEMPLATE.findall(self.uri)

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "format": self.format,
            "overwrite": self.overwrite,
            "fields": list(self.fields) if self.fields is not None else None,
            "encoding": self.encoding,
            "table": self.table,
            "batch_item_count": self.batch_item_count,
            "endpoint": self.endpoint,
            "region": self.region,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedSpec:
        fields = d.get("fields")
        return cls(
            uri=str(d["uri"]),
            format=str(d.get("format") or "jsonl"),
            overwrite=bool(d.get("overwrite")),
            fields=tuple(fields) if fields is not None else None,
            encoding=str(d.get("encoding") or "utf-8"),
            table=d.get("table"),
            batch_item_count=d.get("batch_item_count"),
            endpoint=d.get("endpoint"),
            region=d.get("region"),
        )


def fill_batch(uri: str, batch: str) -> str:
    """A resolved URI with its ``%(batch)s`` filled in."""
    return uri.replace("%(batch)s", batch)


def local_path(resolved_uri: str) -> Path:
    """The local path of a resolved ``file`` feed (``file:///x`` or a plain path)."""
    if resolved_uri.lower().startswith("file://"):
        parts = urlsplit(resolved_uri)
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"feed {resolved_uri!r}: file:// URIs name a local path (file:///path)")
        return Path(parts.path)
    return Path(resolved_uri)


def redact(uri: str) -> str:
    """A URI safe to log and to record: any password replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _check_template(uri: str) -> None:
    for key in _TEMPLATE.findall(uri):
        if key not in _TEMPLATE_KEYS:
            raise ConfigurationError(
                f"feed {redact(uri)!r}: unknown template %({key})s (known: {', '.join(_TEMPLATE_KEYS)})"
            )
    rest = _TEMPLATE.sub("", uri)
    if "%(" in rest:
        raise ConfigurationError(
            f"feed {redact(uri)!r}: a template is written %(name)s, %(time)s, %(round)s or %(batch)s"
        )


def _format_of(uri: str, explicit: str | None) -> str:
    if explicit is not None:
        fmt = explicit.lower()
        if fmt == "jsonlines":
            fmt = "jsonl"
        if fmt not in FORMATS:
            raise ConfigurationError(f"feed {redact(uri)!r}: unknown format {explicit!r} (known: {', '.join(FORMATS)})")
        return fmt
    return EXTENSIONS.get(Path(urlsplit(uri).path if _SCHEME.match(uri) else uri).suffix.lower(), "jsonl")


def make_spec(uri: str, options: Mapping[str, Any] | None = None, *, overwrite: bool | None = None) -> FeedSpec:
    """One feed from a URI and its options, checked; raises :class:`ConfigurationError` naming the problem."""
    opts = dict(options or {})
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"feed {redact(uri)!r}: unknown option(s) {', '.join(sorted(unknown))} (known: {', '.join(OPTIONS)})"
        )
    if not uri:
        raise ConfigurationError("a feed needs a file, '-' or a URI")
    fmt_opt = opts.get("format")
    m = _SCHEME.match(uri)
    if m:
        scheme = m.group(1).lower()
        if scheme not in SCHEMES:
            raise ConfigurationError(
                f"feed {redact(uri)!r}: unsupported scheme {scheme}:// (known: file://, postgresql://, s3://)"
            )
    elif uri != "-":
        suffix = _FORMAT_SUFFIX.search(uri)
        if suffix and fmt_opt is None:
            uri, fmt_opt = uri[: suffix.start()], suffix.group(1)
            if not uri:
                raise ConfigurationError(f"feed ':{fmt_opt}' has no file name")
    _check_template(uri)
    spec_kind = FeedSpec(uri).kind
    if spec_kind == "postgresql":
        if fmt_opt is not None and str(fmt_opt).lower() not in ("postgresql", "postgres"):
            raise ConfigurationError(f"feed {redact(uri)!r}: a PostgreSQL feed has no file format")
        fmt = "postgresql"
    else:
        fmt = _format_of(uri, None if fmt_opt is None else str(fmt_opt))
    if spec_kind == "file":
        local_path(uri)  # file://host/... is refused here
    if spec_kind == "s3":
        parts = urlsplit(uri)
        if not parts.netloc or parts.password is not None or "@" in parts.netloc:
            raise ConfigurationError(
                f"feed {redact(uri)!r}: an S3 feed is s3://BUCKET/KEY (credentials come from AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, never the URI)"
            )
    batch_n = opts.get("batch_item_count")
    if batch_n is not None:
        if isinstance(batch_n, bool) or not isinstance(batch_n, int | str) or not str(batch_n).isdigit():
            raise ConfigurationError(f"feed {redact(uri)!r}: batch_item_count must be a positive integer")
        batch_n = int(batch_n)
        if batch_n < 1:
            raise ConfigurationError(f"feed {redact(uri)!r}: batch_item_count must be a positive integer")
    has_batch = "batch" in _TEMPLATE.findall(uri)
    if spec_kind in ("file", "stdout") and has_batch != (batch_n is not None):
        raise ConfigurationError(
            f"feed {redact(uri)!r}: a file rotated every N items needs both batch_item_count and %(batch)s in its name"
        )
    if spec_kind == "postgresql" and (has_batch or batch_n is not None):
        raise ConfigurationError(f"feed {redact(uri)!r}: %(batch)s and batch_item_count apply to files and s3://")
    for opt in ("endpoint", "region"):
        if opts.get(opt) is not None and spec_kind != "s3":
            raise ConfigurationError(f"feed {redact(uri)!r}: {opt!r} applies to s3:// feeds only")
    fields = opts.get("fields")
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    if fields is not None and (
        not isinstance(fields, list | tuple) or not fields or not all(isinstance(f, str) and f for f in fields)
    ):
        raise ConfigurationError(f"feed {redact(uri)!r}: fields must be a non-empty list of field names")
    encoding = str(opts.get("encoding") or "utf-8")
    try:
        import codecs

        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigurationError(f"feed {redact(uri)!r}: unknown encoding {encoding!r}") from None
    table = opts.get("table")
    if table is not None and spec_kind != "postgresql":
        raise ConfigurationError(f"feed {redact(uri)!r}: 'table' applies to postgresql:// feeds only")
    if spec_kind == "stdout" and (overwrite or opts.get("overwrite")):
        overwrite = False  # nothing to overwrite on stdout
    ow = bool(opts.get("overwrite", False)) if overwrite is None else overwrite
    endpoint = opts.get("endpoint")
    region = opts.get("region")
    return FeedSpec(
        uri,
        fmt,
        ow,
        tuple(fields) if fields is not None else None,
        encoding,
        table,
        batch_n,
        None if endpoint is None else str(endpoint),
        None if region is None else str(region),
    )


def feeds_from_settings(
    output: list[str], overwrite_output: list[str], feeds: Mapping[str, Mapping[str, Any] | None]
) -> list[FeedSpec]:
    """The run's feeds from the ``output``/``overwrite_output``/``feeds`` settings; duplicates are an error."""
    specs = [make_spec(u, overwrite=False) for u in output]
    specs += [make_spec(u, overwrite=True) for u in overwrite_output]
    specs += [make_spec(u, opts or {}) for u, opts in feeds.items()]
    seen: set[str] = set()
    for s in specs:
        key = s.uri if s.kind != "file" else str(local_path(s.uri).absolute())
        if key in seen:
            raise ConfigurationError(f"feed {redact(s.uri)!r} is given twice")
        seen.add(key)
    if sum(1 for s in specs if s.kind == "stdout") > 1:
        raise ConfigurationError("only one feed can be '-' (stdout)")
    return specs
