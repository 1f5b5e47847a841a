"""kopf handlers: thin. Every trigger runs the same idempotent `reconcile` and writes its status."""

from __future__ import annotations

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
    """
    if event_type == "DELETED":
        return False
    meta = body.get("metadata") or {}
    if FINALIZER not in (meta.get("finalizers") or []) and not meta.get("deletionTimestamp"):
        # kopf adds its finalizer (the timer needs it) in this very cycle, with a JSON patch that tests
        # the resourceVersion: a status write of ours first would make it fail. The finalizer's own
        # MODIFIED event comes next and runs the pass.
        return False
    if event_type in (None, "ADDED"):  # None: the initial listing (operator start, like on.resume)
        return True
    generation = (body.get("metadata") or {}).get("generation")
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
    _run(body, patch, memo, wait=False)
