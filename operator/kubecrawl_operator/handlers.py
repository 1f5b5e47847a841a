"""kopf handlers: thin. Every trigger runs the same idempotent `reconcile` and writes its status."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import kopf

from kubecrawl_operator.config import OperatorConfig
from kubecrawl_operator.kube import Kube, load_api_client
from kubecrawl_operator.metrics import METRICS
from kubecrawl_operator.models import GROUP, PLURAL, VERSION
from kubecrawl_operator.reconcile import reconcile

logger = logging.getLogger(__name__)

CONFIG = OperatorConfig.from_env()
#: The finalizer earlier versions put on every Crawl (kopf's timers require one). This version needs
#: none: owner references collect the children, and kopf removes this name from Crawls it sees
#: ("no handlers requiring it"), so Crawls created by an earlier version are migrated on the first pass.
FINALIZER = f"{GROUP}/operator"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # No CRD/namespace scanning: the CRD is installed before the operator and namespaces are exact
    # names, so the operator needs no cluster-wide list/watch of CRDs or namespaces (see rbac.py).
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING  # our explicit events only, not every info log line
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 8
    # A Crawl being deleted waits for a running pass (a sync timer cannot be cancelled): re-check each
    # second instead of kopf's default minute, so deletion is not held up by a pass in flight.
    settings.background.cancellation_polling = 1
    memo.kube = Kube(load_api_client())
    memo.locks = {}
    memo.locks_guard = threading.Lock()
    memo.gone = set()
    try:  # the worker package is heavy to import: pay for it at start-up, not in the first pass
        importlib.import_module("kubecrawl.rules")
        importlib.import_module("kubecrawl.status")
    except ImportError:
        logger.warning("the kubecrawl worker package is missing: no spider checks, no stats in status")
    memo.config = CONFIG
    logger.info("kubecrawl operator started: worker image %s, interval %ss", CONFIG.worker_image, CONFIG.interval)


def _run(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, wait: bool) -> None:
    """One pass at a time per crawl; a timer tick that finds a pass running just skips."""
    with memo.locks_guard:
        lock: threading.Lock = memo.locks.setdefault(body.metadata.uid, threading.Lock())
    if not lock.acquire(blocking=wait):
        return
    try:
        _reconcile(body, patch, memo)
    finally:
        lock.release()


def _reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo) -> None:
    started = time.monotonic()
    try:
        outcome = reconcile(memo.kube, body, memo.config)
    except Exception as exc:
        METRICS.record_error(exc, time.monotonic() - started)
        raise
    METRICS.record_pass(body.metadata, outcome.status, time.monotonic() - started)
    current = body.get("status") or {}
    changed = {k: v for k, v in outcome.status.items() if current.get(k) != v}
    if changed:  # a quiet crawl costs no writes
        patch.status.update(changed)
    for event_type, reason, message in outcome.events:
        kopf.event(body, type=event_type, reason=reason, message=message)


def needs_pass(event_type: str | None, body: Mapping[str, Any]) -> bool:
    """A watch event worth a pass now: the first sight of a Crawl, or a spec the status does not describe yet.

    Spec changes are found by `metadata.generation` (bumped by the API server on every spec change) against
    `status.observedGeneration` (written by each pass), not by kopf's change detection: that keeps a copy of
    the whole spec in an annotation, which breaks on specs over 256 KiB (all annotations share that limit).
    Status-only events (our own writes) have equal generations and are skipped, so a quiet crawl stays quiet.

    No finalizer is involved: no handler requires one, so kopf adds none, and it strips the one an earlier
    version left (FINALIZER) in the same cycle, after this pass's status write (its JSON patch tests the
    resourceVersion the status write returned; on a conflict kopf keeps it and retries on the next event).
    A Crawl being deleted gets no pass: its children go with it by owner references.
    """
    if event_type == "DELETED":
        return False
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    if event_type in (None, "ADDED"):  # None: the initial listing (operator start, like on.resume)
        return True
    generation = meta.get("generation")
    return generation is None or (body.get("status") or {}).get("observedGeneration") != generation


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_change(type: str | None, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """A new Crawl, a spec change or the operator's start converges at once instead of at the next tick.

    Errors are logged, not retried here: the timer's next pass (level-based) retries.
    """
    if type == "DELETED":
        METRICS.crawls.forget(str(body.metadata.uid))
    elif needs_pass(type, body):
        _run(body, patch, memo, wait=True)


@kopf.timer(GROUP, VERSION, PLURAL, interval=CONFIG.interval, initial_delay=CONFIG.interval)
def periodic(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Level-based: restores hand-edited children, refreshes stats, scales to zero between rounds."""
    if body.metadata.uid in memo.gone:  # deleted (no finalizer: kopf's timer may tick once more)
        return
    _run(body, patch, memo, wait=False)


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Remember deleted Crawls, so a timer left behind does nothing for them."""
    if event.get("type") == "DELETED":
        uid = (event.get("object") or {}).get("metadata", {}).get("uid")
        if uid:
            memo.gone.add(uid)
            with memo.locks_guard:
                memo.locks.pop(uid, None)


def _timers_without_finalizer() -> None:
    """kopf gives every timer `requires_finalizer=True`, so a Crawl could not be deleted while the
    operator is down (the finalizer waits for it). The timer only refreshes status and repairs drift;
    nothing has to happen at deletion (owner references collect the children), so it needs none."""
    spawning = kopf.get_default_registry()._spawning
    spawning._handlers = [dataclasses.replace(h, requires_finalizer=False) for h in spawning._handlers]


_timers_without_finalizer()
