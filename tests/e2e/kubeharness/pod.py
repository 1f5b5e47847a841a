"""One pod on the node helper: its containers as processes, probes, restarts, status, termination."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import podspec, probes, procs, volumes
from .kube import ApiError, Kube
from .podspec import DnsTable, NotReadyYet
from .runtime import ContainerLaunch, Runtime, UnknownImage, rewrite_paths

logger = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Container:
    spec: dict[str, Any]
    launch: ContainerLaunch
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restarts: int = 0
    last_exit: int | None = None
    finished_at: str = ""
    done: bool = False  # will not be restarted
    ready: probes.ProbeState | None = None
    live: probes.ProbeState | None = None
    restart_at: float = 0.0


@dataclass
class PodRunner:
    """Runs one pod bound to the node. `dns` is asked for a table of the pod's namespace at start."""

    kube: Kube
    runtime: Runtime
    pod: dict[str, Any]
    pod_ip: str
    host_ip: str
    pod_dir: Path
    claims_dir: Path
    server: str
    dns: Callable[[str], tuple[DnsTable, DnsTable]]
    hosts_file: Path | None = None
    containers: list[Container] = field(default_factory=list)
    phase: str = "Pending"
    waiting_reason: str = "ContainerCreating"
    message: str = ""
    deleting: float | None = None  # grace period once deletion was requested
    finished: threading.Event = field(default_factory=threading.Event)
    _stop_now: threading.Event = field(default_factory=threading.Event)
    _conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    _last_status: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True).start()

    def request_delete(self, grace: float) -> None:
        if self.deleting is None:
            self.deleting = grace
            self._stop_now.set()

    # -- main loop -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._prepare()
            init = self.pod["spec"].get("initContainers") or []
            if init and not self._run_init(init):
                return
            self._loop()
        except Exception:
            logger.exception("pod %s: node helper error", self.key)
            self.message = "node helper error (see test log)"
        finally:
            self._terminate()

    def _prepare(self) -> None:
        """Wait until ConfigMaps, Secrets and referenced Services exist, then build every launch."""
        while not self._stop_now.is_set():
            try:
                self.containers = self._build(self.pod["spec"]["containers"])
                return
            except NotReadyYet as exc:
                self.message = str(exc)
                self._report()
                self._stop_now.wait(0.5)
            except UnknownImage as exc:
                self.waiting_reason, self.message = "ErrImagePull", str(exc)
                self._report()
                self._stop_now.wait(2)

    def _build(self, specs: list[dict[str, Any]]) -> list[Container]:
        ns = self.pod["metadata"]["namespace"]
        cm_names, secret_names = volumes.referenced_objects(self.pod)
        cms = volumes.fetch_objects(self.kube, ns, cm_names, "configmaps")
        secs = volumes.fetch_objects(self.kube, ns, secret_names, "secrets")
        spec_volumes = self.pod["spec"].get("volumes") or []
        vol_dirs = {v["name"]: volumes.volume_dir(ns, v, self.pod_dir, self.claims_dir) for v in spec_volumes}
        all_specs = (self.pod["spec"].get("initContainers") or []) + self.pod["spec"]["containers"]
        pod_mounts: dict[str, Path] = {}
        for c in all_specs:
            pod_mounts.update(volumes.container_mounts(c, vol_dirs))

        def rewrite(content: bytes) -> bytes:
            try:
                return rewrite_paths(content.decode(), pod_mounts).encode()
            except UnicodeDecodeError:
                return content

        vol_dirs = volumes.materialize(
            self.kube,
            self.pod,
            self.pod_dir,
            configmaps=cms,
            secrets=secs,
            pod_ip=self.pod_ip,
            host_ip=self.host_ip,
            claims_dir=self.claims_dir,
            rewrite=rewrite,
            server=self.server,
        )
        table, pending = self.dns(ns)
        out = []
        for c in specs:
            api_host, api_port = self.server.removeprefix("https://").rsplit(":", 1)
            base = {
                "KUBERNETES_SERVICE_HOST": api_host,
                "KUBERNETES_SERVICE_PORT": api_port,
                "HOSTNAME": self.pod["spec"].get("hostname") or self.pod["metadata"]["name"],
            }
            env = podspec.container_env(
                self.pod, c, configmaps=cms, secrets=secs, pod_ip=self.pod_ip, host_ip=self.host_ip, base=base
            )
            command, args = podspec.argv(c, env)
            texts = list(env.values()) + (command or []) + (args or [])
            unresolved = [t for t in texts if pending.rewrite(t) != t]
            if unresolved:
                raise NotReadyYet(f"no pod behind the Service named in {unresolved[0]!r} yet")
            env = {k: table.rewrite(v) for k, v in env.items()}
            mounts = volumes.container_mounts(c, vol_dirs)
            sa_mount = "/var/run/secrets/kubernetes.io/serviceaccount"
            node_env = {}
            if sa_mount in mounts and (mounts[sa_mount] / "kubeconfig").exists() and "KUBECONFIG" not in env:
                node_env["KUBECONFIG"] = str(mounts[sa_mount] / "kubeconfig")
            launch = ContainerLaunch(
                pod_key=self.key,
                name=c["name"],
                image=c.get("image", ""),
                command=[table.rewrite(x) for x in command] if command is not None else None,
                args=[table.rewrite(x) for x in args] if args is not None else None,
                env=env,
                pod_ip=self.pod_ip,
                mounts=mounts,
                working_dir=c.get("workingDir"),
                log_path=self.pod_dir / f"{c['name']}.log",
                hosts_file=self.hosts_file,
                node_env=node_env,
            )
            self.runtime.check(launch)  # fail early on an unknown image/command
            out.append(Container(spec=c, launch=launch))
        return out

    def _run_init(self, init_specs: list[dict[str, Any]]) -> bool:
        for spec in init_specs:
            while not self._stop_now.is_set():
                try:
                    (c,) = self._build([spec])
                    break
                except NotReadyYet as exc:
                    self.message = str(exc)
                    self._stop_now.wait(0.5)
            else:
                return False
            self.waiting_reason = "PodInitializing"
            self._report()
            proc = self.runtime.start(c.launch)
            while proc.poll() is None:
                if self._stop_now.wait(0.2):
                    procs.stop(proc, grace=self.deleting or 0)
                    return False
            if proc.returncode != 0:
                if self.pod["spec"].get("restartPolicy", "Always") == "Never":
                    self.phase, self.message = "Failed", f"init container {spec['name']} exited {proc.returncode}"
                    self._report()
                    return False
                return self._run_init(init_specs)
        return True

    def _loop(self) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for c in self.containers:
            self._start_container(c)
        self.phase, self.waiting_reason, self.message = "Running", "", ""
        while not self._stop_now.is_set():
            t = probes.now()
            for c in self.containers:
                self._tick(c, policy, t)
            if all(c.done for c in self.containers):
                failed = any(c.last_exit for c in self.containers)
                self.phase = "Failed" if failed else "Succeeded"
                self._report()
                return
            self._report()
            self._stop_now.wait(0.2)

    def _start_container(self, c: Container) -> None:
        c.proc = self.runtime.start(c.launch)
        c.started_at = _now()
        t = probes.now()
        c.ready = probes.ProbeState(c.spec.get("readinessProbe"), started_at=t)
        c.live = probes.ProbeState(c.spec.get("livenessProbe"), started_at=t)
        c.live.ok = True

    def _tick(self, c: Container, policy: str, t: float) -> None:
        if c.done:
            return
        if c.proc is None:
            if t >= c.restart_at:
                c.restarts += 1
                self._start_container(c)
            return
        code = c.proc.poll()
        if code is None:
            assert c.ready is not None and c.live is not None
            for state in (c.ready, c.live):
                if state.due(t):
                    state.record(probes.check(state.probe or {}, c.spec, self.pod_ip, self._exec(c)), t)
            if not c.live.ok:
                logger.info("pod %s container %s failed liveness; restarting", self.key, c.spec["name"])
                procs.stop(c.proc, grace=float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
            return
        procs.stop(c.proc, grace=0)  # reap anything left in its process group
        c.last_exit, c.finished_at, c.proc = code, _now(), None
        logger.info("pod %s container %s exited %s", self.key, c.spec["name"], code)
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            c.done = True
        else:
            c.restart_at = t + min(10.0, 0.5 * 2 ** min(c.restarts, 5))

    def _exec(self, c: Container) -> Callable[[list[str], float], int]:
        return lambda command, timeout: self.runtime.exec(c.launch, command, timeout)

    def _terminate(self) -> None:
        grace = self.deleting if self.deleting is not None else 0.0
        for c in self.containers:
            if c.proc is not None:
                c.last_exit = procs.stop(c.proc, grace=grace)
                c.proc, c.finished_at = None, _now()
        if self.deleting is not None:
            try:  # what the kubelet does once containers are gone: remove the object for good
                self.kube.delete(
                    f"/api/v1/namespaces/{self.pod['metadata']['namespace']}/pods/{self.pod['metadata']['name']}",
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                )
            except ApiError as exc:
                if exc.status != 409:
                    logger.warning("pod %s final delete: %s", self.key, exc)
        self.finished.set()

    # -- status ----------------------------------------------------------------------------------
    def _condition(self, kind: str, ok: bool) -> dict[str, str]:
        status = "True" if ok else "False"
        prev = self._conditions.get(kind)
        if prev is None or prev[0] != status:
            self._conditions[kind] = (status, _now())
        return {"type": kind, "status": status, "lastTransitionTime": self._conditions[kind][1]}

    def _container_status(self, c: Container) -> dict[str, Any]:
        image = c.spec.get("image", "")
        st: dict[str, Any] = {
            "name": c.spec["name"],
            "image": image,
            "imageID": f"local://{image}",
            "restartCount": c.restarts,
        }
        if c.proc is not None:
            st["state"] = {"running": {"startedAt": c.started_at}}
            st["containerID"] = f"local://{c.proc.pid}"
            st["ready"] = bool(c.ready and c.ready.ok)
            st["started"] = True
        elif c.last_exit is not None:
            term = {
                "exitCode": c.last_exit,
                "reason": "Completed" if c.last_exit == 0 else "Error",
                "startedAt": c.started_at,
                "finishedAt": c.finished_at,
            }
            st["ready"], st["started"] = False, False
            if c.done:
                st["state"] = {"terminated": term}
            else:
                st["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
                st["lastState"] = {"terminated": term}
        else:
            st["state"] = {"waiting": {"reason": self.waiting_reason or "ContainerCreating"}}
            st["ready"] = False
        return st

    def _report(self) -> None:
        if self.deleting is not None:
            return
        statuses = (
            [self._container_status(c) for c in self.containers]
            if self.containers
            else [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": self.waiting_reason, "message": self.message}},
                }
                for c in self.pod["spec"]["containers"]
            ]
        )
        ready = self.phase == "Running" and all(s.get("ready") for s in statuses)
        running = self.phase in ("Running", "Succeeded", "Failed")
        status: dict[str, Any] = {
            "phase": self.phase,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.pod.get("status", {}).get("startTime") or _now(),
            "conditions": [
                self._condition("PodScheduled", True),
                self._condition("Initialized", running),
                self._condition("ContainersReady", ready),
                self._condition("Ready", ready),
            ],
            "containerStatuses": statuses,
            "message": self.message or None,
        }
        self.pod.setdefault("status", {})["startTime"] = status["startTime"]
        if status == self._last_status:
            return
        ns, name = self.pod["metadata"]["namespace"], self.pod["metadata"]["name"]
        try:
            self.kube.merge_patch(f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status})
            self._last_status = status
        except ApiError as exc:
            if exc.status == 404:
                self._stop_now.set()
            else:
                logger.warning("pod %s status update failed: %s", self.key, exc)

    def is_ready(self) -> bool:
        return (
            self.phase == "Running"
            and bool(self.containers)
            and all(c.proc is not None and c.ready is not None and c.ready.ok for c in self.containers)
        )

    def pids(self) -> dict[str, int]:
        return {c.spec["name"]: c.proc.pid for c in self.containers if c.proc is not None}
