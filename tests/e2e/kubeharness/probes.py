"""Readiness/liveness probes (httpGet, tcpSocket, exec) run against a pod's own IP."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

logger = logging.getLogger(__name__)


def resolve_port(port: int | str, container: Mapping[str, Any]) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"container {container.get('name')} has no port named {port!r}")


def check(
    probe: Mapping[str, Any],
    container: Mapping[str, Any],
    pod_ip: str,
    run_exec: Callable[[list[str], float], int],
) -> bool:
    """One probe attempt: True on success."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            h = probe["httpGet"]
            scheme = h.get("scheme", "HTTP").lower()
            host = h.get("host") or pod_ip
            url = f"{scheme}://{host}:{resolve_port(h['port'], container)}{h.get('path', '/')}"
            headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
            r = requests.get(url, headers=headers, timeout=timeout, verify=False, allow_redirects=False)
            return 200 <= r.status_code < 400
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            with socket.create_connection(
                (t.get("host") or pod_ip, resolve_port(t["port"], container)), timeout=timeout
            ):
                return True
        if "exec" in probe:
            return run_exec(list(probe["exec"]["command"]), timeout) == 0
        if "grpc" in probe:
            return False
    except (OSError, requests.RequestException, ValueError) as exc:
        logger.debug("probe of %s failed: %s", container.get("name"), exc)
        return False
    return True


@dataclass
class ProbeState:
    """Consecutive successes/failures of one probe, with Kubernetes' thresholds and periods."""

    probe: Mapping[str, Any] | None
    started_at: float
    ok: bool = False
    successes: int = 0
    failures: int = 0
    next_at: float = 0.0
    max_period: float = field(default=2.0)

    def __post_init__(self) -> None:
        if self.probe is None:
            self.ok = True
        else:
            self.next_at = self.started_at + float(self.probe.get("initialDelaySeconds", 0))

    def due(self, now: float) -> bool:
        return self.probe is not None and now >= self.next_at

    def record(self, success: bool, now: float) -> None:
        assert self.probe is not None
        # Periods are capped so tests converge quickly; thresholds are kept as declared.
        self.next_at = now + min(float(self.probe.get("periodSeconds", 10)), self.max_period)
        if success:
            self.successes += 1
            self.failures = 0
            if self.successes >= int(self.probe.get("successThreshold", 1)):
                self.ok = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= int(self.probe.get("failureThreshold", 3)):
                self.ok = False


def now() -> float:
    return time.monotonic()
