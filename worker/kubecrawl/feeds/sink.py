"""The one small interface every feed destination implements, and the local ones: files and stdout.

A :class:`Sink` is opened with the checkpoint its store recorded (``None``: a new feed), takes batches
of :class:`FeedItem` and returns a new checkpoint after each, and is closed. The store (the SQLite
outbox, docs/feeds.md) records the checkpoint and the last item id in one transaction, so after a
``kill -9`` the next run reopens the sink at the recorded checkpoint and writes the items after the
recorded id again: a sink is exactly-once in effect when writing from a checkpoint replaces whatever
was written after it (files: truncate to the recorded offset) or when its writes are idempotent by
the item's key (PostgreSQL: upsert).
"""

from __future__ import annotations

import logging
import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import ConfigurationError, StorageError
from .formats import Encoder, encoder_for
from .spec import FeedSpec, local_path, redact

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FeedItem:
    """One stored item on its way out: its place in the store's outbox, its JSON and its upsert key."""

    seq: int
    data: bytes
    key: bytes


class Sink(ABC):
    """Where a feed's items go. Methods are called from one task, in order: open, write*, close."""

    #: a sink whose checkpoint lets a resumed run continue it (files); stdout cannot be resumed
    resumable: bool = True

    def __init__(self, spec: FeedSpec, uri: str) -> None:
        self.spec = spec
        self.uri = uri  #: the resolved URI (templates filled in)
        self.written = 0

    @property
    @abstractmethod
    def key(self) -> str:
        """Stable identity of this destination (the store records its checkpoint under it); no secrets."""

    @abstractmethod
    def open(self, checkpoint: str | None) -> str:
        """Open at ``checkpoint`` (as returned by :meth:`write`) or, for ``None``, as a new feed; returns the checkpoint."""

    @abstractmethod
    def write(self, batch: list[FeedItem]) -> str:
        """Write ``batch`` durably enough for the store to record it; returns the checkpoint after it."""

    def rewind(self, checkpoint: str | None) -> None:
        """Go back to ``checkpoint`` (the store could not record a later one). Sinks whose writes are
        idempotent by the item's key (PostgreSQL) need nothing."""

    def close(self) -> None:
        """Flush and release; log what the format could not carry."""


class FileSink(Sink):
    """A local file (or one on a PVC) in any format; the checkpoint is the byte offset before the footer."""

    def __init__(self, spec: FeedSpec, uri: str) -> None:
        super().__init__(spec, uri)
        self.path = local_path(uri)
        self.enc: Encoder = encoder_for(spec.format, spec.encoding, spec.fields)
        self._f: IO[bytes] | None = None
        self.size = 0
        self._header_len = len(self.enc.header())

    @property
    def key(self) -> str:
        return str(self.path.resolve())

    def open(self, checkpoint: str | None) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            exists = self.path.exists() and self.path.stat().st_size > 0
            if checkpoint is not None and exists:
                f = open(self.path, "r+b", buffering=0)  # noqa: SIM115 - closed in close()
                recorded = int(checkpoint)
                actual = f.seek(0, os.SEEK_END)
                if actual < recorded:
                    log.warning(
                        "feed %s is shorter than recorded (%d < %d bytes): appending to it", self.path, actual, recorded
                    )
                    self._adopt(f)
                else:
                    self.size = recorded
                    if actual > recorded + len(self.enc.footer):
                        log.info("resume: dropping %d unrecorded byte(s) of %s", actual - recorded, self.path)
                    f.seek(0)
                    self.enc.adopt_header(f.read(min(recorded, 1 << 16)))
            elif exists and not self.spec.overwrite:
                f = open(self.path, "r+b", buffering=0)  # noqa: SIM115
                self._adopt(f)
            else:
                f = open(self.path, "w+b", buffering=0)  # noqa: SIM115
                head = self.enc.header()
                _write_all(f, head + self.enc.footer)
                self.size = len(head)
        except OSError as exc:
            raise StorageError(f"cannot open feed {self.path}: {exc}") from None
        self._f = f
        return str(self.size)

    def _adopt(self, f: IO[bytes]) -> None:
        end = f.seek(0, os.SEEK_END)
        base = max(0, end - (1 << 16))
        f.seek(base)
        tail = f.read()
        f.seek(0)
        head = f.read(min(end, 1 << 16))
        try:
            self.size = base + self.enc.adopt(tail, base == 0)
        except ConfigurationError as exc:
            raise ConfigurationError(f"feed {self.path}: {exc}") from None
        self.enc.adopt_header(head)

    def write(self, batch: list[FeedItem]) -> str:
        f = self._f
        if f is None:
            raise StorageError(f"feed {self.path} is not open")
        if batch:
            payload = self.enc.encode([it.data for it in batch], self.size <= self._header_len)
            try:
                f.seek(self.size)
                _write_all(f, payload + self.enc.footer)
                f.truncate()
                f.flush()
            except OSError:
                self._cut_back()
                raise
            self.size += len(payload)
            self.written += len(batch)
        return str(self.size)

    def rewind(self, checkpoint: str | None) -> None:
        if checkpoint is not None and checkpoint.isdigit() and self._f is not None:
            self.size = int(checkpoint)
            self._cut_back()

    def _cut_back(self) -> None:
        """After a failed write (a full disk): the file back to its last whole item and its footer,
        so it stays valid meanwhile (no torn last line); the items stay in the store for the retry."""
        f = self._f
        assert f is not None
        try:
            f.seek(self.size)
            f.truncate()
            _write_all(f, self.enc.footer)
        except OSError as exc:
            log.error("feed %s: cannot restore its end after a failed write: %s", self.path, exc)

    def close(self) -> None:
        if self._f is not None:
            self._f.seek(self.size)
            _write_all(self._f, self.enc.footer)
            self._f.truncate()
            self._f.close()
            self._f = None
        if self.enc.replaced:
            log.warning(
                "feed %s: %d value(s) had characters %s cannot carry (written escaped)",
                self.path,
                self.enc.replaced,
                self.spec.encoding,
            )
        if self.enc.illegal:
            log.warning(
                "feed %s: %d character(s) XML 1.0 cannot carry were written as U+FFFD", self.path, self.enc.illegal
            )
        if self.enc.dropped_fields:
            log.warning(
                "feed %s: %d field value(s) had no CSV column and were left out (set the feed's fields)",
                self.path,
                self.enc.dropped_fields,
            )


def _write_all(f: IO[bytes], data: bytes) -> None:
    """All of ``data`` to an unbuffered file: a raw write may write part of it (then the next one
    raises, e.g. EFBIG/ENOSPC), and a part must never count as done."""
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:
            raise OSError(f"wrote nothing to {getattr(f, 'name', 'a feed')}")
        view = view[n:]


class StdoutSink(Sink):
    """``-``: items to standard output; the footer at close. Not resumable (a new stream every run)."""

    resumable = False

    def __init__(self, spec: FeedSpec, uri: str) -> None:
        super().__init__(spec, uri)
        self.enc = encoder_for(spec.format, spec.encoding, spec.fields)
        self._first = True
        self._out = sys.stdout.buffer

    @property
    def key(self) -> str:
        return "-"

    def open(self, checkpoint: str | None) -> str:
        self._out.write(self.enc.header())
        self._out.flush()
        return ""

    def write(self, batch: list[FeedItem]) -> str:
        if batch:
            self._out.write(self.enc.encode([it.data for it in batch], self._first))
            self._out.flush()
            self._first = False
            self.written += len(batch)
        return ""

    def close(self) -> None:
        self._out.write(self.enc.footer)
        self._out.flush()


def make_sink(spec: FeedSpec, uri: str, *, name: str, item_dedup: str) -> Sink:
    """The sink of a resolved feed URI."""
    if spec.kind == "stdout":
        return StdoutSink(spec, uri)
    if spec.kind == "postgresql":
        from .postgres import PostgresSink

        return PostgresSink(spec, uri, table=spec.table or name, item_dedup=item_dedup)
    return FileSink(spec, uri)


def describe(sink: Sink) -> str:
    return redact(sink.uri)


__all__ = ["FeedItem", "FileSink", "Path", "Sink", "StdoutSink", "make_sink"]
