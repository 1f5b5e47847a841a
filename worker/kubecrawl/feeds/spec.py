"""What a feed is: a URI (a file, ``-`` for stdout, or ``postgresql://``), a format and its options.

Feeds come from ``-o``/``-O`` (``FILE``, ``FILE:FORMAT``, a URI) and from the ``feeds`` setting, a
mapping URI → options as Scrapy's ``FEEDS``. Everything is checked at start-up: an unknown scheme or
format is a :class:`~kubecrawl.errors.ConfigurationError` (exit 2), never a local file with a strange
name. URIs are templates: ``%(name)s`` (spider), ``%(time)s`` (UTC, at the start of the run or round)
and ``%(round)s`` (round number); a template that changes between rounds rotates the feed.
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
#: URI schemes with a sink; every other ``scheme://`` is refused (S3 is not built yet: docs/feeds.md)
SCHEMES = ("file", "postgresql", "postgres")
OPTIONS = ("format", "overwrite", "fields", "encoding", "table")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_FORMAT_SUFFIX = re.compile(r":([A-Za-z0-9_-]+)$")
_TEMPLATE = re.compile(r"%\((\w+)\)s")
_TEMPLATE_KEYS = ("name", "time", "round")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One configured feed. ``uri`` may hold ``%(name)s``/``%(time)s``/``%(round)s`` (see :meth:`resolve`)."""

    uri: str
    format: str = "jsonl"
    overwrite: bool = False
    fields: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    table: str | None = None

    @property
    def kind(self) -> str:
        """``file``, ``stdout`` or ``postgresql``."""
        if self.uri == "-":
            return "stdout"
        m = _SCHEME.match(self.uri)
        if m and m.group(1).lower() in ("postgresql", "postgres"):
            return "postgresql"
        return "file"

    @property
    def templated(self) -> bool:
        return bool(_TEMPLATE.search(self.uri))

    def resolve(self, name: str, round_no: int, now: float | None = None) -> str:
        """The URI with its template filled in: the spider name, the round and the UTC time (``:`` → ``-``)."""
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(time.time() if now is None else now))
        values = {"name": name, "time": stamp, "round": str(round_no)}
        return _TEMPLATE.sub(lambda m: values[m.group(1)], self.uri)

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "format": self.format,
            "overwrite": self.overwrite,
            "fields": list(self.fields) if self.fields is not None else None,
            "encoding": self.encoding,
            "table": self.table,
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
        )


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
        raise ConfigurationError(f"feed {redact(uri)!r}: a template is written %(name)s, %(time)s or %(round)s")


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
            hint = " (S3 is not supported yet: write to a file or postgresql://)" if scheme == "s3" else ""
            raise ConfigurationError(f"feed {redact(uri)!r}: unsupported scheme {scheme}://{hint}")
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
    return FeedSpec(uri, fmt, ow, tuple(fields) if fields is not None else None, encoding, table)


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
