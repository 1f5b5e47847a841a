"""etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, with a kubeconfig and an audit log."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3
import yaml

from . import procs
from .audit import AuditLog

logger = logging.getLogger(__name__)

# Controllers that do something useful without a kubelet/scheduler; no node lifecycle (our node helper
# does not heartbeat through Leases, and evictions would only get in the way).
CONTROLLERS = (
    "deployment",
    "replicaset",
    "job",
    "cronjob",
    "statefulset",
    "garbagecollector",
    "namespace",
    "serviceaccount",
    "serviceaccount-token",
    "root-ca-cert-publisher",
    "endpoint",
    "endpointslice",
    "endpointslicemirroring",
    "ttl-after-finished",
    "podgc",
    "disruption",
    "pvc-protection",  # removes kubernetes.io/pvc-protection from a deleted PVC once no pod uses it
    "resourcequota",  # quota admission enforces a ResourceQuota only once this controller filled its status
)

# The API server listens on a loopback address of its own: inside a pod, 127.0.0.1 means the pod itself
# (see shim/podnet.c), so host services that pods reach live on 127.0.255.x.
HOST_ADDRESS = "127.0.255.254"

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


@dataclass
class ControlPlane:
    """A running control plane. Use `start()`; always `stop()` (the fixture does)."""

    bin_dir: Path
    data_dir: Path
    keep_data: bool = False
    server: str = ""
    token: str = ""
    kubeconfig: Path = field(default_factory=Path)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def create(cls, bin_dir: Path, data_dir: Path | None = None) -> ControlPlane:
        keep = data_dir is not None
        data = data_dir or Path(tempfile.mkdtemp(prefix="kubecrawl-e2e-"))
        data.mkdir(parents=True, exist_ok=True)
        return cls(bin_dir=bin_dir, data_dir=data, keep_data=keep)

    # -- paths -----------------------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    @property
    def audit_log(self) -> AuditLog:
        return AuditLog(self.data_dir / "audit.log")

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-signed serving certificate bundle (cert + its CA)."""
        return self.data_dir / "certs" / "apiserver.crt"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, timeout: float = 120.0) -> None:
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self._write_kubeconfig()
            self._start_controller_manager(timeout)
        except BaseException:
            logger.error("control plane failed to start; logs in %s", self.data_dir / "logs")
            for name in self._procs:
                logger.error("--- %s log tail ---\n%s", name, procs.tail(self.log_path(name)))
            self.stop()
            raise
        logger.info("control plane ready at %s (data and logs in %s)", self.server, self.data_dir)

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                procs.stop(proc, grace=15)
        if not self.keep_data and os.environ.get("KUBECRAWL_E2E_KEEP") != "1":
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def failed_processes(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self._procs.items() if p.poll() is not None}

    def describe_logs(self) -> str:
        return f"control plane logs: {self.data_dir / 'logs'} (audit: {self.data_dir / 'audit.log'})"

    def _start_etcd(self, timeout: float) -> None:
        client, peer = procs.free_port(), procs.free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        argv = [
            shutil.which("etcd") or "etcd",
            "--name=e2e",
            f"--data-dir={self.data_dir / 'etcd'}",
            f"--listen-client-urls={self._etcd_url}",
            f"--advertise-client-urls={self._etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296",
        ]
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
        self._procs["etcd"] = procs.start(argv, self.log_path("etcd"), env=env)

        def healthy() -> bool:
            self._check_alive()
            return requests.get(f"{self._etcd_url}/health", timeout=2).json().get("health") == "true"

        procs.wait_until(healthy, timeout=timeout, what="etcd /health")

    def _start_apiserver(self, timeout: float) -> None:
        d = self.data_dir
        (d / "certs").mkdir(exist_ok=True)
        sa_key, sa_pub = d / "sa.key", d / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)],
            check=True,
            capture_output=True,
        )
        self.token = secrets.token_hex(24)
        (d / "tokens.csv").write_text(f'{self.token},e2e-admin,e2e-admin-uid,"system:masters"\n')
        (d / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
        port = procs.free_port(HOST_ADDRESS)
        self.server = f"https://{HOST_ADDRESS}:{port}"
        argv = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self._etcd_url}",
            f"--bind-address={HOST_ADDRESS}",
            f"--advertise-address={HOST_ADDRESS}",
            f"--secure-port={port}",
            f"--cert-dir={d / 'certs'}",
            f"--token-auth-file={d / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            f"--audit-policy-file={d / 'audit-policy.yaml'}",
            f"--audit-log-path={d / 'audit.log'}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]
        self._procs["kube-apiserver"] = procs.start(argv, self.log_path("kube-apiserver"))
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

        def ready() -> bool:
            self._check_alive()
            r = requests.get(
                f"{self.server}/readyz",
                headers={"Authorization": f"Bearer {self.token}"},
                verify=False,
                timeout=5,
            )
            return r.status_code == 200

        procs.wait_until(ready, timeout=timeout, interval=0.25, what="kube-apiserver /readyz")

    def _write_kubeconfig(self) -> None:
        self.kubeconfig = self.data_dir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig_for(self.server, self.token, "e2e-admin")))

    def _start_controller_manager(self, timeout: float) -> None:
        argv = [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={procs.free_port()}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={self.data_dir / 'sa.key'}",
            f"--root-ca-file={self.ca_file}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--profiling=false",
            "--v=1",
        ]
        self._procs["kube-controller-manager"] = procs.start(argv, self.log_path("kube-controller-manager"))

        # The serviceaccount controller creating `default` in `default` proves the manager is working.
        def default_sa() -> bool:
            self._check_alive()
            return self.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200

        procs.wait_until(default_sa, timeout=timeout, interval=0.25, what="kube-controller-manager")

    def _check_alive(self) -> None:
        dead = self.failed_processes()
        if dead:
            raise RuntimeError(f"control plane process exited: {dead}; {self.describe_logs()}")

    # -- clients ---------------------------------------------------------------------------------
    def get(self, path: str) -> requests.Response:
        return requests.get(
            f"{self.server}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            verify=False,
            timeout=10,
        )

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises with stdout/stderr when check and it fails."""
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        result = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, argv, output=result.stdout, stderr=result.stderr)
        return result

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / "helm"), f"--kubeconfig={self.kubeconfig}", *args]
        env = dict(
            os.environ,
            HELM_CACHE_HOME=str(self.data_dir / "helm-cache"),
            HELM_CONFIG_HOME=str(self.data_dir / "helm-config"),
            HELM_DATA_HOME=str(self.data_dir / "helm-data"),
        )
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, argv, output=result.stdout, stderr=result.stderr)
        return result

    def api_client(self, token: str | None = None):  # type: ignore[no-untyped-def]
        """A `kubernetes.client.ApiClient` for this cluster (admin unless a token is given)."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.server
        conf.verify_ssl = False
        conf.api_key = {"authorization": f"Bearer {token or self.token}"}
        return client.ApiClient(conf)

    def write_kubeconfig_for_token(self, token: str, user: str, path: Path) -> Path:
        path.write_text(yaml.safe_dump(kubeconfig_for(self.server, token, user)))
        return path


def kubeconfig_for(server: str, token: str, user: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user, "namespace": "default"}}],
        "current-context": "e2e",
    }
