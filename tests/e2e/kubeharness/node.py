"""A kubelet + scheduler stand-in: a Ready Node that binds Pending pods to itself and runs them locally.

Each pod gets its own loopback address (127.0.x.y); Service names in env/args are rewritten to the IP
of a pod the Service selects; pod status is reported to the API server; deleted pods are stopped with
SIGTERM, the grace period, then SIGKILL, and removed, as a kubelet does.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cachefiles import write_atomic
from .kube import ApiError, Kube
from .pod import PodRunner
from .podspec import DnsTable, selects, target_port
from .runtime import Runtime

logger = logging.getLogger(__name__)


def _pod_range() -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """127.N.0.1-127.N.254.254 with N random per node: several e2e sessions on one machine (other test
    layers start their own clusters) must not hand out the same pod addresses."""
    n = random.randint(1, 254)
    return ipaddress.IPv4Address(f"127.{n}.0.1"), ipaddress.IPv4Address(f"127.{n}.254.254")


@dataclass
class Node:
    kube: Kube
    runtime: Runtime
    workdir: Path
    server: str
    name: str = "e2e-node"
    host_ip: str = "127.0.0.1"
    namespaces: set[str] | None = None  # None: every namespace
    runners: dict[str, PodRunner] = field(default_factory=dict)  # by pod uid
    _ips: dict[str, str] = field(default_factory=dict)  # namespace/name → ip, kept for reuse
    _next_ip: ipaddress.IPv4Address = field(default_factory=lambda: _pod_range()[0])
    _pods: list[dict[str, Any]] = field(default_factory=list)
    _services: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)
    _final_deletes: dict[str, float] = field(default_factory=dict)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._register()
        self._thread = threading.Thread(target=self._loop, name=f"node-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for runner in list(self.runners.values()):
            runner.deleting = grace if runner.deleting is None else runner.deleting
            runner._stop_now.set()
        for runner in list(self.runners.values()):
            runner.finished.wait(timeout=grace + 30)

    def _register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        try:
            self.kube.post("/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "500", "ephemeral-storage": "100Gi"}
        self.kube.merge_patch(
            f"/api/v1/nodes/{self.name}/status",
            {
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "addresses": [
                        {"type": "InternalIP", "address": self.host_ip},
                        {"type": "Hostname", "address": self.name},
                    ],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "e2e node helper runs pods as local processes",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                    "nodeInfo": {
                        "kubeletVersion": "v1.33.5",
                        "kubeProxyVersion": "v1.33.5",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "containerRuntimeVersion": "local://venv",
                        "osImage": "local",
                        "kernelVersion": "",
                        "machineID": "",
                        "systemUUID": "",
                        "bootID": "",
                    },
                }
            },
        )

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as exc:
                logger.exception("node sync failed")
                self.errors.append(repr(exc))
            self._stop.wait(0.2)

    def _watched(self, obj: dict[str, Any]) -> bool:
        return self.namespaces is None or obj["metadata"]["namespace"] in self.namespaces

    def _sync(self) -> None:
        pods = [p for p in self.kube.get("/api/v1/pods")["items"] if self._watched(p)]
        services = [s for s in self.kube.get("/api/v1/services")["items"] if self._watched(s)]
        self._pods, self._services = pods, services
        self._write_hosts({p["metadata"]["namespace"] for p in pods})
        present = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            uid = meta["uid"]
            present.add(uid)
            if not spec.get("nodeName"):
                if (
                    not meta.get("deletionTimestamp")
                    and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
                ):
                    self._bind(pod)
                continue
            if spec["nodeName"] != self.name:
                continue
            runner = self.runners.get(uid)
            if meta.get("deletionTimestamp"):
                grace = float(meta.get("deletionGracePeriodSeconds", 30))
                if runner is None or runner.finished.is_set():
                    self._final_delete(pod)
                else:
                    runner.request_delete(grace)
            elif runner is None and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                self._run(pod)
        for uid, runner in list(self.runners.items()):
            if uid not in present:  # force-deleted: stop at once
                runner.request_delete(runner.deleting if runner.deleting is not None else 0.0)
                if runner.finished.is_set():
                    del self.runners[uid]

    def _bind(self, pod: dict[str, Any]) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
        }
        try:
            self.kube.post(f"/api/v1/namespaces/{ns}/pods/{name}/binding", body)
            logger.info("bound pod %s/%s to %s", ns, name, self.name)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    def _final_delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        last = self._final_deletes.get(meta["uid"], 0.0)
        if time.monotonic() - last < 2:  # a finalizer (e.g. Job tracking) may keep it a little longer
            return
        self._final_deletes[meta["uid"]] = time.monotonic()
        self.kube.delete(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
        )

    def _run(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        pod_dir = self.workdir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        runner = PodRunner(
            kube=self.kube,
            runtime=self.runtime,
            pod=pod,
            pod_ip=self._allocate(meta["namespace"], meta["name"]),
            host_ip=self.host_ip,
            pod_dir=pod_dir,
            claims_dir=self.workdir / "claims",
            server=self.server,
            dns=self.dns_table,
            hosts_file=self.hosts_file(meta["namespace"]),
        )
        self.runners[meta["uid"]] = runner
        runner.start()

    def _allocate(self, namespace: str, name: str) -> str:
        """A stable IP per pod name (a recreated StatefulSet pod gets its old address back)."""
        with self._lock:
            key = f"{namespace}/{name}"
            if key not in self._ips:
                if int(self._next_ip) % 65536 > 65534 - 256:
                    raise RuntimeError("pod address range exhausted")
                self._ips[key] = str(self._next_ip)
                nxt = int(self._next_ip) + 1
                while nxt % 256 in (0, 255):
                    nxt += 1
                self._next_ip = ipaddress.IPv4Address(nxt)
            return self._ips[key]

    # -- DNS -------------------------------------------------------------------------------------
    def dns_table(self, namespace: str) -> tuple[DnsTable, DnsTable]:
        """(resolved names → IPs, names without a pod yet) for Services and pod hostnames of namespace."""
        table, pending = DnsTable(namespace), DnsTable(namespace)
        pods = [
            p
            for p in self._pods
            if p["metadata"]["namespace"] == namespace and not p["metadata"].get("deletionTimestamp")
        ]
        ready = {uid for uid, r in list(self.runners.items()) if r.is_ready()}
        for svc in self._services:
            if svc["metadata"]["namespace"] != namespace:
                continue
            name = svc["metadata"]["name"]
            chosen = [p for p in pods if selects(svc["spec"].get("selector"), p["metadata"].get("labels"))]
            live = [p for p in chosen if p["metadata"]["uid"] in ready]
            if live:
                table.hosts[name] = self._ips[f"{namespace}/{live[0]['metadata']['name']}"]
                table.ports[name] = {int(sp["port"]): target_port(sp, live) for sp in svc["spec"].get("ports") or []}
            else:
                pending.hosts[name] = "0.0.0.0"
        for p in pods:  # <hostname>.<subdomain> of pods behind a headless Service (StatefulSets)
            sub, host = p["spec"].get("subdomain"), p["spec"].get("hostname")
            if sub and host:
                key = f"{namespace}/{p['metadata']['name']}"
                if key in self._ips:
                    table.hosts[f"{host}.{sub}"] = self._ips[key]
        return table, pending

    def hosts_file(self, namespace: str) -> Path:
        return self.workdir / "dns" / f"{namespace}.hosts"

    def _write_hosts(self, namespaces: set[str]) -> None:
        """Per-namespace hosts files read by the pod network shim: cluster DNS for runtime lookups."""
        tables = {ns: self.dns_table(ns)[0] for ns in namespaces}
        for ns in namespaces:
            lines = []
            for other, table in tables.items():
                for name, ip in table.hosts.items():
                    names = [f"{name}.{other}.svc.cluster.local", f"{name}.{other}.svc", f"{name}.{other}"]
                    if other == ns:
                        names.append(name)
                    lines.append(f"{ip} {' '.join(names)}")
            content = "\n".join(sorted(lines)) + "\n"
            path = self.hosts_file(ns)
            if path.exists() and path.read_text() == content:
                continue
            write_atomic(path, content)

    # -- for tests -------------------------------------------------------------------------------
    def runner(self, namespace: str, name: str) -> PodRunner | None:
        found = [r for r in self.runners.values() if r.key == f"{namespace}/{name}"]
        return found[-1] if found else None

    def live_pids(self, namespace: str) -> dict[str, dict[str, int]]:
        """Pod name → container → PID of every running container process in namespace."""
        out = {}
        for r in list(self.runners.values()):
            if r.pod["metadata"]["namespace"] == namespace and r.pids():
                out[r.pod["metadata"]["name"]] = r.pids()
        return out

    def logs(self, namespace: str, name: str, container: str | None = None) -> str:
        r = self.runner(namespace, name)
        if r is None:
            return ""
        c = container or r.pod["spec"]["containers"][0]["name"]
        path = r.pod_dir / f"{c}.log"
        return path.read_text(errors="replace") if path.exists() else ""
