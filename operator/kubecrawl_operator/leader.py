"""Leader election on a coordination.k8s.io/v1 Lease: with several operator replicas exactly one is active.

The protocol is client-go's (`k8s.io/client-go/tools/leaderelection`), so `kubectl get lease` reads it
the way administrators know from kube-controller-manager:

- a candidate takes the Lease when it is free (no holder), held by itself (a restarted container of
  the same pod), or when the holder's record has not changed for `leaseDurationSeconds` *as measured
  on the candidate's own monotonic clock* (no clock comparison across machines);
- every write is a merge patch carrying the `resourceVersion` that was read (a precondition: the API
  server answers 409 Conflict when the Lease changed in between), so of two candidates only one wins;
- the holder renews every `retry_period`; if no renewal succeeds for `renew_deadline` (< lease
  duration) it has lost the Lease and must stop acting before anyone else may take it;
- on a clean shutdown the holder releases the Lease (empty holder), so a standby takes over at once
  instead of after a lease duration.

The `kubernetes` package's own `leaderelection` module was not used: it cannot release the Lease on
shutdown, cannot be stopped, and logs every retry of every standby at INFO.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3

from kubecrawl_operator import rbac
from kubecrawl_operator.kube import KubeError, raw_call

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("need lease duration > renew deadline > retry period > 0")

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Acquire, renew and release one Lease. Thread-safe enough for one acquiring/renewing thread."""

    def __init__(
        self, api: kubernetes.client.ApiClient, config: LeaseConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._api = api
        self.config = config
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None  # (holder, renewTime, resourceVersion) last seen
        self._observed_at = 0.0
        self.holder: str | None = None  # who holds the Lease, as last read
        self.last_renewal: float | None = None  # clock() of our last successful acquire/renew

    def _call(self, verb: str, path: str, body: Any = None) -> Any:
        if not rbac.allowed_lease(verb):
            raise PermissionError(f"{verb} leases is not in kubecrawl_operator.rbac.LEASE_RULES")
        method = {"get": "GET", "create": "POST", "patch": "PATCH"}[verb]
        content_type = "application/merge-patch+json" if verb == "patch" else "application/json"
        try:
            return raw_call(
                self._api, method, path, body, content_type=content_type, timeout=max(1.0, self.config.retry_period)
            )
        except kubernetes.client.ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.body or exc.reason)[:300]) from exc
        except urllib3.exceptions.HTTPError as exc:
            # An API server that is down or unreachable: urllib3's errors (MaxRetryError, ProtocolError,
            # timeouts) are not OSErrors. Uncaught, one would end the renewing thread while kopf went on
            # acting without the Lease, and a standby would take it over: two active operators.
            raise OSError(f"API server unreachable: {exc}") from exc
        except ValueError as exc:  # a body that is not JSON (a proxy's error page)
            raise OSError(f"unreadable answer from the API server: {exc}") from exc

    def _spec(self, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
            "acquireTime": acquire_time,
            "renewTime": _now(),
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this candidate holds the Lease afterwards."""
        cfg = self.config
        try:
            lease = self._call("get", f"{cfg.path}/{cfg.name}")
        except KubeError as exc:
            if exc.status != 404:
                logger.warning("cannot read lease %s/%s: %s", cfg.namespace, cfg.name, exc)
                return False
            return self._create()
        except OSError as exc:  # unreachable or unreadable (see _call)
            logger.warning("cannot read lease %s/%s: %s", cfg.namespace, cfg.name, exc)
            return False
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        self.holder = holder
        record = (holder, spec.get("renewTime"), lease["metadata"].get("resourceVersion"))
        now = self._clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        if holder not in (None, cfg.identity):
            duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
            if now < self._observed_at + duration:
                return False  # held, and renewed within its duration as far as we have seen
            logger.info("lease %s/%s of %s expired: taking it over", cfg.namespace, cfg.name, holder)
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == cfg.identity:
            body_spec = self._spec(spec.get("acquireTime") or _now(), transitions)
        else:
            body_spec = self._spec(_now(), transitions + 1)
        body = {"metadata": {"resourceVersion": lease["metadata"].get("resourceVersion")}, "spec": body_spec}
        try:
            updated = self._call("patch", f"{cfg.path}/{cfg.name}", body)
        except KubeError as exc:
            if exc.status != 409:  # 409: another candidate wrote first
                logger.warning("cannot update lease %s/%s: %s", cfg.namespace, cfg.name, exc)
            return False
        except OSError as exc:
            logger.warning("cannot update lease %s/%s: %s", cfg.namespace, cfg.name, exc)
            return False
        self._won(updated)
        if holder != cfg.identity:
            logger.info("acquired lease %s/%s as %s", cfg.namespace, cfg.name, cfg.identity)
        return True

    def _create(self) -> bool:
        cfg = self.config
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": self._spec(_now(), 0),
        }
        try:
            created = self._call("create", cfg.path, body)
        except KubeError as exc:
            if exc.status != 409:
                logger.warning("cannot create lease %s/%s: %s", cfg.namespace, cfg.name, exc)
            return False
        except OSError as exc:
            logger.warning("cannot create lease %s/%s: %s", cfg.namespace, cfg.name, exc)
            return False
        self._won(created)
        logger.info("created lease %s/%s as %s", cfg.namespace, cfg.name, cfg.identity)
        return True

    def _won(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        self.holder = self.config.identity
        self._observed = (self.config.identity, spec.get("renewTime"), lease["metadata"].get("resourceVersion"))
        self._observed_at = self.last_renewal = self._clock()

    def acquire(self, stop: threading.Event, on_attempt: Callable[[], None] = lambda: None) -> bool:
        """Block until the Lease is ours (True) or `stop` is set (False); `on_attempt` after each try."""
        cfg = self.config
        logger.info("standing by for lease %s/%s as %s", cfg.namespace, cfg.name, cfg.identity)
        announced: str | None = None
        while not stop.is_set():
            won = self.try_acquire_or_renew()
            on_attempt()
            if won:
                return True
            if self.holder != announced and self.holder is not None:
                announced = self.holder
                logger.info("lease %s/%s is held by %s: standing by", cfg.namespace, cfg.name, self.holder)
            stop.wait(cfg.retry_period)
        return False

    def renew_until_lost(self, stop: threading.Event) -> bool:
        """Renew every retry period until `stop` is set (True) or no renewal succeeded for the deadline (False)."""
        cfg = self.config
        while not stop.wait(cfg.retry_period):
            if self.try_acquire_or_renew():
                continue
            last = self.last_renewal or 0.0
            if self._clock() - last >= cfg.renew_deadline:
                logger.error(
                    "lost lease %s/%s: no renewal for %.0fs (holder now %s)",
                    cfg.namespace,
                    cfg.name,
                    self._clock() - last,
                    self.holder,
                )
                return False
        return True

    def release(self) -> None:
        """Give the Lease up (empty holder) if it is still ours, so a standby need not wait it out."""
        cfg = self.config
        try:
            lease = self._call("get", f"{cfg.path}/{cfg.name}")
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != cfg.identity:
                return
            body = {
                "metadata": {"resourceVersion": lease["metadata"].get("resourceVersion")},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _now()},
            }
            self._call("patch", f"{cfg.path}/{cfg.name}", body)
        except (KubeError, OSError) as exc:
            logger.warning("could not release lease %s/%s (it expires by itself): %s", cfg.namespace, cfg.name, exc)
            return
        self.holder = None
        logger.info("released lease %s/%s", cfg.namespace, cfg.name)
