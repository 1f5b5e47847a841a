"""Operator fixtures: a Kubernetes API (kmock's emulator, or a real cluster), the operator as a
real subprocess, and a real redis-server. Every fixture polls with a deadline and stops what it starts.

The same flows run against a real kube-apiserver with either
  KUBECRAWL_OPERATOR_TEST_KUBECONFIG=/path/kubeconfig   (any cluster; the fixture installs crds/crawl.yaml), or
  KUBECRAWL_OPERATOR_TEST_API=controlplane               (etcd + kube-apiserver + kube-controller-manager from
                                                          tests/e2e's harness, started once per session),
each test in a fresh namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import pytest
import redis
import yaml

from tests.operator.cluster import Cluster, eventually, write_kubeconfig
from tests.operator.emulator import EmulatorThread

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "crawl.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KubeApi:
    kubeconfig: Path
    emulated: bool
    emulator: EmulatorThread | None = None


@pytest.fixture(scope="session")
def control_plane_kubeconfig() -> Iterator[str]:
    """A real control plane built by tests/e2e (cached binaries; built on first use)."""
    from tests.e2e.kubeharness.binaries import ensure_binaries
    from tests.e2e.kubeharness.controlplane import ControlPlane

    plane = ControlPlane.create(ensure_binaries())
    plane.start()
    try:
        yield str(plane.kubeconfig)
    finally:
        plane.stop()


@pytest.fixture
def kube_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    real = os.environ.get("KUBECRAWL_OPERATOR_TEST_KUBECONFIG")
    if not real and os.environ.get("KUBECRAWL_OPERATOR_TEST_API") == "controlplane":
        real = request.getfixturevalue("control_plane_kubeconfig")
    if real:
        client = kubernetes.config.new_client_from_config(config_file=real)
        crd = yaml.safe_load(CRD.read_text())
        ext = kubernetes.client.ApiextensionsV1Api(client)
        try:
            ext.create_custom_resource_definition(crd)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
            ext.patch_custom_resource_definition(crd["metadata"]["name"], crd)
        eventually(
            lambda: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in ext.read_custom_resource_definition(crd["metadata"]["name"]).to_dict()["status"]["conditions"]
                or []
            ),
            "the Crawl CRD to be established",
        )
        yield KubeApi(Path(real), emulated=False)
        return
    emulator = EmulatorThread().start()
    try:
        path = write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig", emulator.url)
        yield KubeApi(path, emulated=True, emulator=emulator)
    finally:
        emulator.stop()


@pytest.fixture
def cluster(kube_api: KubeApi) -> Iterator[Cluster]:
    namespace = f"kc-{uuid.uuid4().hex[:8]}"
    api = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    core = kubernetes.client.CoreV1Api(api)
    if not kube_api.emulated:  # kmock 0.8 cannot parse POST /api/v1/namespaces; it needs no namespace object
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        yield Cluster(api=api, namespace=namespace, emulated=kube_api.emulated)
    finally:
        c = Cluster(api=api, namespace=namespace, emulated=kube_api.emulated)
        for crawl in c.list("Crawl"):  # finalizers would block deletion once the operator is gone
            name = crawl["metadata"]["name"]
            c.patch("Crawl", name, {"metadata": {"finalizers": None}})
            try:
                c.delete("Crawl", name)
            except kubernetes.client.ApiException:
                pass
        if not kube_api.emulated:
            core.delete_namespace(namespace)
        api.close()


@dataclass
class OperatorProcess:
    """`kubecrawl-operator run` as a real process watching one namespace."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Replaces `--standalone`, e.g. `--leader-elect ...` for several replicas.
    mode_args: tuple[str, ...] = ("--standalone",)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    def probe(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of one of the operator's probe endpoints."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def start(self) -> OperatorProcess:
        self.port = port = free_port()
        exe = shutil.which("kubecrawl-operator", path=str(Path(sys.executable).parent)) or "kubecrawl-operator"
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECRAWL_WORKER_IMAGE": "kubecrawl/worker:test",
            "KUBECRAWL_OPERATOR_INTERVAL": "0.5",
            "KUBECRAWL_OPERATOR_REDIS_TIMEOUT": "2",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                exe,
                "run",
                "--namespace",
                self.namespace,
                *self.mode_args,
                "--verbose",
                "--liveness",
                f"http://127.0.0.1:{port}/healthz",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def alive() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"operator exited:\n{self.log()}"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        eventually(alive, "the operator's liveness endpoint", timeout=60)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def operator(kube_api: KubeApi, cluster: Cluster, tmp_path: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(kube_api.kubeconfig, cluster.namespace, tmp_path / "operator.log").start()
    try:
        yield proc
    finally:
        proc.stop()
        assert "Traceback" not in proc.log(), proc.log()[-5000:]


@dataclass
class RedisServer:
    port: int
    password: str
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run scripts that install it (apt-get install redis-server)")
    port, password = free_port(), "s3cret-" + uuid.uuid4().hex[:8]
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, password, proc)
    try:
        eventually(lambda: server.client().ping(), "redis-server to answer PING", timeout=30)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
