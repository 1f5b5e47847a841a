"""``kubecrawl push``: put URLs into a crawl's queue from the command line or standard input.

Each entry is a URL or a JSON object (``url``, ``meta``, ``priority``, ``callback``, ``dont_filter``),
one per line on stdin. Every entry is checked as the engine checks a request a spider yields; a bad one
is reported on stderr with where it came from and counted, the good ones are queued through
:class:`kubecrawl.queue.RequestQueue` (deduplicated by fingerprint, counted ``pushed`` /
``pushed_duplicate`` / ``pushed_invalid`` in the crawl's counters). Exit 0, or 2 when any entry was
invalid (the valid ones are queued all the same: nothing given is dropped silently).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from .errors import ConfigurationError
from .queue import PUT_BATCH, InvalidRequest, PushResult, RequestQueue, check_item, request_from_data
from .request import Request
from .settings import Settings

#: invalid entries reported one by one on stderr; past this, only counted
MAX_REPORTED = 100


@dataclass(slots=True)
class PushSummary:
    pushed: int = 0
    duplicate: int = 0
    invalid: int = 0

    def line(self) -> str:
        return f"pushed {self.pushed}, duplicate {self.duplicate}, invalid {self.invalid}"


def entries(urls: list[str], stdin: IO[bytes]) -> Iterator[tuple[str, bytes | str]]:
    """``(where, entry)`` for each argument, ``-`` meaning every non-blank line of ``stdin``."""
    for i, arg in enumerate(urls, 1):
        if arg != "-":
            yield f"argument {i}", arg
            continue
        for n, line in enumerate(stdin, 1):
            if line.strip():
                yield f"stdin line {n}", line


def push(
    q: RequestQueue,
    items: Iterable[tuple[str, bytes | str]],
    *,
    callback: str | None = None,
    priority: int | None = None,
    err: IO[str] = sys.stderr,
    report: int | None = MAX_REPORTED,
) -> PushSummary:
    """Check and queue ``items``; report invalid ones on ``err`` (the first ``report``; None: all)."""
    summary = PushSummary()
    batch: list[Request] = []

    def flush() -> None:
        res: PushResult = q.put_many(batch)
        summary.pushed += res.pushed
        summary.duplicate += res.duplicate
        batch.clear()

    for where, raw in items:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            req = request_from_data(text, callback=callback, priority=priority)
            check_item(req, wire=True)
        except (InvalidRequest, UnicodeDecodeError, ValueError) as exc:
            summary.invalid += 1
            if report is None or summary.invalid <= report:
                shown = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                err.write(f"kubecrawl push: {where}: invalid: {exc} ({shown.strip()[:200]!r})\n")
            continue
        batch.append(req)
        if len(batch) >= PUT_BATCH:
            flush()
    if batch:
        flush()
    if report is not None and summary.invalid > report:
        err.write(f"kubecrawl push: ... {summary.invalid - report} more invalid entries not shown\n")
    if summary.invalid:
        q.count("pushed_invalid", summary.invalid)
    return summary


def open_queue(redis_url: str | None, state_dir: Any, crawl: str | None) -> RequestQueue:
    """The queue ``push`` writes to: Redis (``--redis-url`` or the environment) or a ``--state-dir``."""
    from .queue import _Store, make_store, queue_settings

    overrides: dict[str, Any] = {}
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    s: Settings = queue_settings(crawl or "push", None, overrides)
    redis = s.role != "none" or "redis_url" in s.model_fields_set
    if redis == (s.state_dir is not None):
        raise ConfigurationError(
            "push needs one target: --redis-url URL --crawl NAME (or env KUBECRAWL_REDIS_URL), or --state-dir DIR"
        )
    if redis and not crawl:
        raise ConfigurationError("push to Redis needs --crawl NAME (or env KUBECRAWL_CRAWL)")
    return RequestQueue(_Store(make_store(s), s))
