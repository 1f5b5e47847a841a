"""The S3 sink (``s3://bucket/key``): one object per batch, through obstore (Rust's ``object_store``).

Every :meth:`S3Sink.write` is one ``PUT`` of a complete document in the feed's format (a JSON array,
a CSV with its header row, an ``<items>`` XML, or JSON lines). A PUT is atomic: a reader sees the
whole object or none. The object's name is the URI with ``%(batch)s`` filled in (or ``-<batch>``
put before the extension when the URI has none), and the batch name is deterministic: the store's
id of the batch's first item (``<seq>-<store>``; a Redis stream's entry id on a distributed crawl).
The store hands out batches again after a crash from the same first item, so a retry overwrites
the same object with the same items (or, in the SQLite outbox, with those items and more stored
since), and no item is written to two objects: exactly-once in effect.

Endpoint and region come from the feed's ``endpoint``/``region`` options, else the standard
``AWS_ENDPOINT_URL``/``AWS_REGION`` environment; credentials from ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` (never the URI, never the state store).
Install with ``pip install 'kubecrawl[s3]'``.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, StorageError
from .formats import encoder_for
from .sink import FeedItem, Sink
from .spec import FeedSpec, fill_batch

log = logging.getLogger(__name__)

#: the version of the items' envelope, in every object's metadata (docs/feeds.md)
ITEMS_FORMAT_VERSION = "1"
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "csv": "text/csv",
    "xml": "application/xml",
}


def _obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise ConfigurationError("s3:// feeds need obstore: pip install 'kubecrawl[s3]'") from None
    return obstore


def object_key_template(path: str, fmt: str) -> str:
    """The object key with a ``%(batch)s``: the URI's own, or ``-%(batch)s`` before the extension."""
    key = path.lstrip("/")
    if "%(batch)s" in key:
        return key
    if not key or key.endswith("/"):
        return f"{key}%(batch)s.{fmt}"
    p = PurePosixPath(key)
    return str(p.with_name(f"{p.stem}-%(batch)s{p.suffix}"))


def batch_name(first: FeedItem, origin: str) -> str:
    """The deterministic name of a batch: its first item's place in the store that sent it."""
    if first.ref:
        return f"{first.ref}-{origin}" if origin else first.ref
    return f"{first.seq:012d}-{origin}" if origin else f"{first.seq:012d}"


class S3Sink(Sink):
    """One object per batch; the checkpoint is the last object's key (informational: writes are idempotent)."""

    #: the SQLite outbox writes an object every 5 s or every ``batch_item_count`` (else 2000) items,
    #: not one per commit: fewer, bigger objects (a PUT costs the same for 30 items or 2000)
    hold_s = 5.0

    def __init__(self, spec: FeedSpec, uri: str, *, origin: str = "") -> None:
        super().__init__(spec, uri)
        obstore = _obstore()  # a missing extra is a configuration error at start-up
        parts = urlsplit(uri)
        self.bucket = parts.netloc
        self.key_template = object_key_template(parts.path, spec.format)
        self.origin = origin
        self.endpoint = spec.endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.region = spec.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.objects = 0
        self.last_key = ""
        self._obstore = obstore
        self._store: Any = None
        self.enc = encoder_for(spec.format, spec.encoding, spec.fields)

    @property
    def key(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.key_template}{where}"

    def _client(self) -> Any:
        if self._store is not None:
            return self._store
        from obstore.store import S3Store

        config: dict[str, Any] = {}
        if self.endpoint:
            config["endpoint"] = self.endpoint
            config["virtual_hosted_style_request"] = False  # S3-compatible servers: path-style
        if self.region:
            config["region"] = self.region
        try:
            self._store = S3Store(
                self.bucket,
                config=config,  # type: ignore[arg-type]
                client_options={
                    "allow_http": bool(self.endpoint and self.endpoint.startswith("http://")),
                    "connect_timeout": timedelta(seconds=5),
                    "timeout": timedelta(seconds=60),
                },
                # a failing PUT comes back within seconds; the store retries the batch later
                retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=10)},
            )
        except Exception as exc:  # obstore's configuration errors
            raise ConfigurationError(f"S3 feed {self.key}: {exc}") from None
        return self._store

    def open(self, checkpoint: str | None) -> str:
        """Connects lazily: an object store that is down at start delays delivery, it does not stop the crawl."""
        return checkpoint or ""

    def object_key(self, batch: list[FeedItem]) -> str:
        return fill_batch(self.key_template, batch_name(batch[0], self.origin))

    def write(self, batch: list[FeedItem]) -> str:
        """One object per ``batch_item_count`` items (or per batch): chunks start at fixed places, so a
        batch sent again after a crash (from the same first item, perhaps with more items) overwrites
        the same objects."""
        n = self.spec.batch_item_count or len(batch) or 1
        for i in range(0, len(batch), n):
            self._put(batch[i : i + n])
        return self.last_key

    def _put(self, batch: list[FeedItem]) -> None:
        enc = encoder_for(self.spec.format, self.spec.encoding, self.spec.fields)
        body = enc.header() + enc.encode([it.data for it in batch], True) + enc.footer
        key = self.object_key(batch)
        store = self._client()
        try:
            self._obstore.put(
                store,
                key,
                body,
                use_multipart=False,  # one PUT: atomic, never a half-written object
                attributes={
                    "Content-Type": CONTENT_TYPES[self.spec.format],
                    "kubecrawl-items-version": ITEMS_FORMAT_VERSION,
                    "kubecrawl-items": str(len(batch)),
                },
            )
        except Exception as exc:  # obstore raises its own exception types (network, auth, no bucket)
            first = (str(exc).strip().splitlines() or [""])[0]  # the rest is a debug dump
            raise StorageError(f"S3 feed s3://{self.bucket}/{key}: {type(exc).__name__}: {first}") from None
        for attr in ("replaced", "illegal", "dropped_fields"):
            setattr(self.enc, attr, getattr(self.enc, attr) + getattr(enc, attr))
        self.objects += 1
        self.written += len(batch)
        self.last_key = key

    def close(self) -> None:
        if self.objects:
            log.info("feed %s: %d item(s) in %d object(s)", self.key, self.written, self.objects)
        if self.enc.replaced:
            log.warning(
                "feed %s: %d value(s) written escaped (encoding %s)", self.key, self.enc.replaced, self.enc.encoding
            )
        if self.enc.illegal:
            log.warning("feed %s: %d character(s) XML 1.0 cannot carry written as U+FFFD", self.key, self.enc.illegal)
        if self.enc.dropped_fields:
            log.warning(
                "feed %s: %d field value(s) had no CSV column and were left out (set the feed's fields)",
                self.key,
                self.enc.dropped_fields,
            )
