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
from .spec import FeedSpec, fill_batch, local_path, redact

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FeedItem:
    """One stored item on its way out: its place in the store's outbox, its JSON and its upsert key.

    ``ref``, when set, is the item's id in a store whose ids are not numbers (a Redis stream entry id):
    sinks that name batches (S3) use it, or ``seq``, so that a batch sent again gets the same name."""

    seq: int
    data: bytes
    key: bytes
    ref: str = ""


class Sink(ABC):
    """Where a feed's items go. Methods are called from one task, in order: open, write*, close."""

    #: a sink whose checkpoint lets a resumed run continue it (files); stdout cannot be resumed
    resumable: bool = True
    #: a store that keeps items durably (the SQLite outbox) may hold them up to this many seconds, or
    #: until :meth:`room` (else its export batch) items wait, to write bigger batches; 0: every commit
    hold_s: float = 0.0

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

    def room(self) -> int | None:
        """How many items the next :meth:`write` may take (a file rotated every N items); None: any number.

        A store that resumes a feed from a checkpoint (the SQLite outbox) never gives a write more, so a
        write never spans two files and a rotation is recorded before the next file gets an item."""
        return None


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


def batch_file_name(n: int) -> str:
    """``%(batch)s`` of the n-th file of a rotated feed: zero-padded so that names sort in order."""
    return f"{n:06d}"


class RotatingFileSink(Sink):
    """A file feed with ``%(batch)s`` in its name and ``batch_item_count`` N: a new file every N items.

    The checkpoint is ``<file number>:<items in it>:<the file's own checkpoint>``. The write that fills
    a file closes it and opens the next one before it returns (no item goes to the next file in that
    write), so the checkpoint recorded after it names the new file; a write repeated after a crash
    truncates the old file back and opens the new one again, which has no item yet. Every file of a
    rotation is complete (its format's footer) once the next one is opened."""

    def __init__(self, spec: FeedSpec, uri: str) -> None:
        super().__init__(spec, uri)
        self.limit = spec.batch_item_count or 0
        if self.limit < 1 or "%(batch)s" not in uri:
            raise ConfigurationError(f"feed {redact(uri)!r}: rotation needs %(batch)s and batch_item_count")
        self.number = 1
        self.count = 0
        self.files = 0
        self._inner: FileSink | None = None
        self._created: bool = False

    @property
    def key(self) -> str:
        return str(local_path(self.uri).resolve())

    def path_of(self, n: int) -> Path:
        return local_path(fill_batch(self.uri, batch_file_name(n)))

    def _checkpoint(self, inner: str) -> str:
        return f"{self.number}:{self.count}:{inner}"

    def _open_file(self, inner_checkpoint: str | None) -> str:
        inner = FileSink(self.spec, fill_batch(self.uri, batch_file_name(self.number)))
        self._created = not inner.path.exists()
        checkpoint = inner.open(inner_checkpoint)
        self._inner = inner
        self.files += 1
        return checkpoint

    def open(self, checkpoint: str | None) -> str:
        if checkpoint:
            number, count, inner = checkpoint.split(":", 2)
            self.number, self.count = int(number), int(count)
            return self._checkpoint(self._open_file(inner))
        return self._checkpoint(self._open_file(None))

    def room(self) -> int | None:
        return self.limit - self.count

    def write(self, batch: list[FeedItem]) -> str:
        inner = self._inner
        if inner is None:
            raise StorageError(f"feed {self.uri} is not open")
        checkpoint = ""
        i = 0
        while i < len(batch) or not checkpoint:
            take = batch[i : i + self.limit - self.count]
            checkpoint = inner.write(take)
            self.count += len(take)
            self.written += len(take)
            i += len(take)
            if self.count >= self.limit:  # full: the next file, before this write returns
                inner.close()
                self.number += 1
                self.count = 0
                checkpoint = self._open_file(None)
                inner = self._inner
                assert inner is not None
        return self._checkpoint(checkpoint)

    def rewind(self, checkpoint: str | None) -> None:
        """Back to ``checkpoint`` after the store could not record a later one (a full disk): within
        the same file the file is cut back; across a rotation the new file goes and the old reopens."""
        if not checkpoint:
            return
        number, count, inner_checkpoint = checkpoint.split(":", 2)
        inner = self._inner
        if inner is not None and int(number) == self.number:
            self.count = int(count)
            inner.rewind(inner_checkpoint)
            return
        if inner is not None:
            inner.close()
            if self._created and self.count == 0:
                inner.path.unlink(missing_ok=True)
        self.number, self.count = int(number), int(count)
        self._open_file(inner_checkpoint)

    def close(self) -> None:
        inner = self._inner
        if inner is None:
            return
        inner.close()
        self._inner = None
        if self.count == 0 and self._created and self.files > 1:
            # the file opened when the last one filled up, never written to: not left behind empty
            inner.path.unlink(missing_ok=True)


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


def make_sink(spec: FeedSpec, uri: str, *, name: str, item_dedup: str, origin: str = "") -> Sink:
    """The sink of a resolved feed URI. ``origin`` names the store (S3 batch names: unique per store)."""
    if spec.kind == "stdout":
        return StdoutSink(spec, uri)
    if spec.kind == "postgresql":
        from .postgres import PostgresSink

        return PostgresSink(spec, uri, table=spec.table or name, item_dedup=item_dedup)
    if spec.kind == "s3":
        from .s3 import S3Sink

        return S3Sink(spec, uri, origin=origin)
    if spec.batch_item_count is not None:
        return RotatingFileSink(spec, uri)
    return FileSink(spec, uri)


def can_finish(spec: FeedSpec, uri: str) -> bool:
    """Whether a killed run's feed can still be caught up: S3 always, a file if it (or its folder) is there."""
    if spec.kind == "s3":
        return True
    if spec.kind != "file":
        return False
    if spec.batch_item_count is not None:
        return local_path(uri).parent.is_dir()
    return local_path(uri).exists()


def describe(sink: Sink) -> str:
    return redact(sink.uri)


__all__ = ["FeedItem", "FileSink", "Path", "RotatingFileSink", "Sink", "StdoutSink", "can_finish", "make_sink"]
